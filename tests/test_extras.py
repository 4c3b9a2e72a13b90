"""Optional dependencies: a missing one names the extra that installs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _subprocess import BLOCK_TORCH, repo_env

from tgan_deploy._extras import EXTRA_OF, require
from tgan_deploy.errors import MissingExtraError, TganError


def test_present_module_is_returned() -> None:
    assert require("json") is json


def test_missing_known_module_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import tensorrt` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingExtraError) as info:
        require("tensorrt", "TensorRT engines")
    message = str(info.value)
    assert message.startswith("tensorrt is not installed (needed for TensorRT engines): ")
    assert "pip install 'tgan-deploy[tensorrt]'" in message and "\n" not in message
    assert isinstance(info.value, TganError) and isinstance(info.value, ImportError)


def test_submodule_uses_the_top_level_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(MissingExtraError, match=r"yaml.foo is not installed: pip install 'tgan-deploy\[train\]'"):
        require("yaml.foo")


def test_unknown_module_gets_a_plain_pip_hint() -> None:
    hint = "no_such_module_tgan is not installed: pip install no_such_module_tgan"
    with pytest.raises(MissingExtraError, match=hint):
        require("no_such_module_tgan")


@pytest.mark.parametrize("module", sorted(EXTRA_OF))
def test_every_optional_module_names_its_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as info:
        require(module)
    assert info.value.extra == EXTRA_OF[module]
    assert f"pip install 'tgan-deploy[{EXTRA_OF[module]}]'" in str(info.value)


@pytest.mark.parametrize("argv", [["train", "--help"], ["eval", "runs/x"], ["sample", "no-such.pt", "--out", "x.png"]])
def test_a_command_missing_its_extra_says_so_in_one_line(argv: list[str], tmp_path: Path) -> None:
    # `tgan train` (and the tgan-train script, tests/test_wheel.py) import their part only when they run; without
    # torch that is one line naming the command and the extra, exit 2 — a checkpoint for `tgan sample` too.
    (tmp_path / "no-such.pt").write_bytes(b"not read: torch is missing first")
    code = BLOCK_TORCH + f"from tgan_deploy.cli import main\nmain({argv!r}, prog_name='tgan')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=repo_env(), cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: tgan {argv[0]} needs the [train] extra: torch is not installed")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr

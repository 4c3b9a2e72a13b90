"""Optional dependencies: a missing one names the extra that installs it."""

from __future__ import annotations

import json
import sys

import pytest

from tgan_deploy._extras import require
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

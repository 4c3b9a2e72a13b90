"""The TensorRT builder code without TensorRT: type-checked against tensorrt-stubs, every TensorRT name it
uses present in the TensorRT 11 bindings (tests/data/tensorrt11_names.txt), and real TensorRT tests that
run only where TensorRT and a GPU are (marker `tensorrt`)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tgan_deploy.export import tensorrt as trt_mod

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "tgan_deploy" / "export" / "tensorrt.py"
NAMES = Path(__file__).resolve().parent / "data" / "tensorrt11_names.txt"
# variables holding TensorRT modules/objects in tensorrt.py (its docstring states the convention)
TRT_VARIABLES = {"trt", "logger", "builder", "network", "parser", "config", "profile", "cache", "runtime",
                 "engine", "context"}


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def used_tensorrt_names() -> set[str]:
    """Attribute names reached from a TensorRT variable, outside the RTX-only helpers (proven by RTX builds)."""
    tree = ast.parse(SOURCE.read_text())
    names: set[str] = set()
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or "rtx" in func.name:
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Attribute) and _root_name(node) in TRT_VARIABLES:
                names.add(node.attr)
    return names


def test_every_tensorrt_name_is_in_tensorrt_11() -> None:
    listed = [line for line in NAMES.read_text().splitlines() if not line.startswith("#")]
    exact = set(listed)
    used = used_tensorrt_names()
    assert {"build_serialized_network", "STRONGLY_TYPED", "set_tensor_address", "execute_async_v3"} <= used
    # the linker stores a string inside the tail of a longer one ("Builder" in "IExprBuilder"): accept suffixes
    missing = sorted(n for n in used if n not in exact and not any(s.endswith(n) for s in listed))
    assert not missing, f"not in the TensorRT 11 bindings: {missing}"
    assert "FP16" not in used  # removed in TensorRT 11: fp16 engines come from the fp16 ONNX, strongly typed
    assert "FP16" not in exact


def test_name_check_would_catch_a_removed_name() -> None:
    listed = [line for line in NAMES.read_text().splitlines() if not line.startswith("#")]
    assert not any(s.endswith("FP16") for s in listed)  # BuilderFlag.FP16 is gone in TensorRT 11
    assert any(s == "TF32" for s in listed) and any(s == "STRONGLY_TYPED" for s in listed)


MYPY_CONFIG = """[mypy]
python_version = 3.11
ignore_missing_imports = True
mypy_path = .typings
follow_imports = silent
[mypy-torch.*,numpy.*,onnx.*]
follow_imports = skip
[mypy-tensorrt,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
"""


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy (dev extra) not installed")
@pytest.mark.skipif(importlib.util.find_spec("tensorrt_stubs") is None, reason="tensorrt-stubs not installed")
def test_mypy_checks_tensorrt_code_against_the_stubs(tmp_path: Path) -> None:
    """A planted misuse of the TensorRT API in a copy of tensorrt.py must fail mypy: proof that the stubs in
    .typings/ (pyproject's mypy_path, as `make typecheck` uses them) are really read. torch and numpy are
    skipped here to keep the test fast; `make typecheck` checks the real module with everything."""
    assert (REPO / ".typings" / "tensorrt" / "__init__.pyi").is_file(), \
        "run `python scripts/prepare_trt_stubs.py` (make install does)"
    planted = tmp_path / "planted_tensorrt_misuse.py"
    planted.write_text(SOURCE.read_text().replace(
        "config.builder_optimization_level = opt_level",
        "config.builder_optimization_level = opt_level\n    builder.no_such_api()"))
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
                             str(tmp_path / "cache"), str(planted)], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    errors = [line for line in result.stdout.splitlines() if "error:" in line]
    assert errors == [f'{planted}:{_line_of(planted, "no_such_api")}: error: "Builder" has no attribute '
                      '"no_such_api"  [attr-defined]'], result.stdout


def test_project_mypy_config_reads_the_stubs() -> None:
    """`mypy tgan_deploy` (pyproject's config) uses the same stub folder and silences only the stubs' own errors."""
    import tomllib

    mypy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["mypy_path"] == ".typings"
    assert any("tensorrt" in o["module"] and o.get("ignore_errors") for o in mypy.get("overrides", []))


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_missing_tensorrt_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # like the stubs' empty folder
    with pytest.raises(trt_mod.EngineUnavailable, match=r"pip install 'tgan-deploy\[tensorrt\]'") as info:
        trt_mod.load_module("tensorrt")
    assert info.value.exit_code == 3
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed at all
    with pytest.raises(trt_mod.EngineUnavailable, match="tensorrt is not installed"):
        trt_mod.load_module("tensorrt")


def test_engine_file_name_carries_version_and_gpu() -> None:
    assert trt_mod.engine_file_name("generator.fp16", "tensorrt", "10.13.0", "sm90") == \
        "generator.fp16.trt-10.13.0-sm90.plan"


@pytest.mark.tensorrt
@pytest.mark.parametrize("fp16", [False, True])
def test_real_tensorrt_engine_parity(tmp_path: Path, fp16: bool) -> None:
    """Runs only with TensorRT and a CUDA GPU: build the engine, run it, check parity against eager PyTorch."""
    from _factories import small_config, write_checkpoint

    from tgan_deploy.export.pipeline import ExportOptions, run_export

    ckpt = write_checkpoint(tmp_path / "g.pt", small_config("dcgan", 64))
    cache = tmp_path / "export" / "tensorrt.timing-cache"
    meta, report = run_export(ExportOptions(source=ckpt, out=tmp_path / "export", fp16=fp16, trt=True),
                              lambda _line: None)
    rows = [r for r in report.rows if r.backend == "tensorrt"]
    assert rows and all(r.status == "pass" for r in rows), report.table()
    assert meta.files["tensorrt"].endswith(".plan") and cache.is_file()

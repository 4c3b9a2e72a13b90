"""tgan-export as users run it: bad input gives one line, a non-zero exit and no files; --trt without
TensorRT finishes the ONNX part and says what to install; a failed parity check exits 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _factories import small_config, write_checkpoint
from _hardware import has_tensorrt
from _subprocess import repo_env
from click.testing import CliRunner

from tgan_deploy.export import parity as parity_mod
from tgan_deploy.export.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgan_deploy", "export", *args], capture_output=True, text=True,
                          env=repo_env(), timeout=600)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith((".partial", ".old"))]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "step.pt", small_config("dcgan", 32))


@pytest.mark.skipif(has_tensorrt(), reason="TensorRT and a GPU are present: --trt really builds")
def test_fp16_trt_without_tensorrt_completes_onnx_part(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "export"
    proc = _run(str(checkpoint), "--out", str(out), "--fp16", "--trt")
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tensorrt" in errors[0] and "pip install" in errors[0]
    assert "Traceback" not in proc.stderr
    for name in ("generator.onnx", "generator.fp16.onnx", "model.json", "parity.json", "parity.md"):
        assert (out / name).is_file(), name
    assert "| generator.fp16.onnx |" in proc.stdout  # the parity table is printed
    assert not list(out.glob("*.plan")) and not _leftovers(tmp_path)


def _bad_checkpoints(tmp_path: Path, good: Path) -> dict[str, Path]:
    not_ckpt = tmp_path / "notes.pt"
    not_ckpt.write_text("these are not weights")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    critic = write_checkpoint(tmp_path / "critic.pt", small_config("dcgan", 32), critic_only=True)
    return {"not a checkpoint": not_ckpt, "truncated": truncated, "critic": critic,
            "missing": tmp_path / "nope.pt", "empty run dir": tmp_path}


@pytest.mark.parametrize("case", ["not a checkpoint", "truncated", "critic", "missing", "empty run dir"])
def test_bad_checkpoint_one_line_nothing_written(tmp_path: Path, checkpoint: Path, case: str) -> None:
    source = _bad_checkpoints(tmp_path, checkpoint)[case]
    out = tmp_path / "export"
    result = CliRunner().invoke(main, [str(source), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--min-batch", "8", "--max-batch", "4"], "--max-batch 4 is below --min-batch 8"),
    (["--min-batch", "2", "--opt-batch", "1", "--max-batch", "4"], "--opt-batch 1 is outside"),
    (["--opt-batch", "100"], "--opt-batch 100 is outside"),
    (["--opset", "99"], "--opset 99 cannot be written"),
    (["--opt-level", "9"], "--opt-level must be 0..5"),
])
def test_bad_options(tmp_path: Path, checkpoint: Path, args: list[str], message: str) -> None:
    out = tmp_path / "export"
    result = CliRunner().invoke(main, [str(checkpoint), "--out", str(out), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_existing_out_refused_then_replaced_with_force(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    result = CliRunner().invoke(main, [str(checkpoint), "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output and "--force" in result.output
    assert (out / "keep.txt").read_text() == "user data"
    result = CliRunner().invoke(main, [str(checkpoint), "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "generator.onnx").is_file() and not (out / "keep.txt").exists()
    assert not _leftovers(tmp_path)


def test_parity_failure_exits_1_unless_no_check(tmp_path: Path, checkpoint: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parity_mod, "FP32_MAX_ABS", 0.0)  # the real error (~1e-8) now exceeds the tolerance
    out = tmp_path / "export"
    result = CliRunner().invoke(main, [str(checkpoint), "--out", str(out), "--max-batch", "7"])
    assert result.exit_code == 1, result.output
    assert "parity check failed" in result.output and "# Export parity: FAIL" in result.output
    assert "# Export parity: FAIL" in (out / "parity.md").read_text()
    result = CliRunner().invoke(main, [str(checkpoint), "--out", str(out), "--max-batch", "7", "--force",
                                       "--no-check"])
    assert result.exit_code == 0, result.output


def test_interrupted_export_leaves_nothing(tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(parity_mod, "run_parity", interrupted)
    out = tmp_path / "export"
    result = CliRunner().invoke(main, [str(checkpoint), "--out", str(out)])
    assert result.exit_code == 130
    assert not out.exists() and not _leftovers(tmp_path)


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in ("--fp16", "--trt", "--trt-rtx", "--min-batch", "--opt-batch", "--max-batch", "--opset",
                   "--output", "--weights", "--triton-repo", "--check / --no-check", "--force", "--opt-level"):
        assert option in result.output, option

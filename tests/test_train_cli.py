"""tgan-train's command line: --help, and bad input answered in one line with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from train_support import TOY, env, error_line, run_train

from tgan_deploy.run_layout import list_checkpoints


def test_help_explains_every_option() -> None:
    out = run_train("--help").stdout
    for option in ("--config", "--data", "--objective", "--pairing", "--resolution", "--batch-size", "--steps",
                   "--out", "--device", "--seed", "--resume", "--force", "--set"):
        assert option in out


def test_missing_data_folder(tmp_path: Path) -> None:
    proc = run_train("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode != 0 and "does not exist" in error_line(proc)


def test_empty_data_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_train("--data", str(tmp_path / "empty"), "--resolution", "32", "--out", str(tmp_path / "run"),
                     check=False)
    assert proc.returncode != 0 and str(tmp_path / "empty") in error_line(proc)


def test_unknown_config_key_suggests_the_closest(tmp_path: Path) -> None:
    proc = run_train(*TOY, "--set", "optim.lr_gg=1e-4", "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode != 0 and "did you mean 'lr_g'" in error_line(proc)
    assert not (tmp_path / "run").exists()


def test_refuses_a_directory_holding_another_run_unless_resume_or_force(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train(*TOY, "--steps", "2", "--out", str(out), "--set", "run.checkpoint_every=1")
    proc = run_train(*TOY, "--steps", "2", "--out", str(out), check=False)
    assert proc.returncode != 0 and "--resume" in error_line(proc) and "--force" in error_line(proc)
    (out / "notes.txt").write_text("mine")
    run_train(*TOY, "--steps", "3", "--out", str(out), "--force", "--set", "run.checkpoint_every=3")
    assert [p.name for p in list_checkpoints(out)] == ["step-00000003.pt"]  # the old run's are gone ...
    assert (out / "notes.txt").read_text() == "mine"  # ... and nothing else was touched


def test_resume_refuses_truncated_and_foreign_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train(*TOY, "--steps", "2", "--out", str(out), "--set", "run.checkpoint_every=1")
    # another architecture: same run directory, a wider toy network
    proc = run_train("--out", str(out), "--resume", "--steps", "4", "--set", "model.toy_hidden=32", check=False)
    assert proc.returncode != 0 and "does not match the architecture" in error_line(proc)
    newest = list_checkpoints(out)[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    proc = run_train("--out", str(out), "--resume", "--steps", "4", check=False)
    assert proc.returncode != 0 and newest.name in error_line(proc) and "truncated" in error_line(proc)


def test_cuda_requested_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        return
    proc = run_train(*TOY, "--device", "cuda", "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode != 0 and "--device cpu" in error_line(proc)


def test_module_entry_point_used_by_torchrun() -> None:
    proc = subprocess.run([sys.executable, "-m", "tgan_deploy.train", "--help"], env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "tgan-train" in proc.stdout and "--resume" in proc.stdout


def test_demo_runs_end_to_end(tmp_path: Path, cache: Path) -> None:
    """`make demo` in miniature: train, evaluate, export with a passing parity report, sample through the runtime."""
    proc = subprocess.run([sys.executable, "-m", "tgan_deploy", "demo", "--out", str(tmp_path), "--steps", "2"],
                          env=env() | {"TGAN_DEPLOY_CACHE": str(cache)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    grid = Image.open(tmp_path / "run" / "samples.png")
    assert grid.mode == "L" and grid.size == (8 * 34 + 2, 8 * 34 + 2)  # 8x8 digits of 32 px
    parity = json.loads((tmp_path / "export" / "parity.json").read_text())
    assert parity["passed"] and {r["precision"] for r in parity["rows"]} >= {"fp32", "fp16"}
    assert Image.open(tmp_path / "grid.png").size == grid.size  # the runtime's grid of the same seeds
    assert "max pixel difference vs the torch backend: 0" in proc.stdout or \
        "max pixel difference vs the torch backend: 1" in proc.stdout
    # It ends with the grid's path and one evaluation of the model it trained (at the last iteration).
    last = proc.stdout.strip().splitlines()[-1]
    assert str(tmp_path / "grid.png") in last and "trained model: cfd " in last and "at iteration 2 " in last

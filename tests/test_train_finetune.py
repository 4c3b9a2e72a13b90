"""Fine-tuning (train/finetune.py): --init-from starts from the parent's weights, a changed class count
re-initialises only the label tables, FreezeD keeps the first critic blocks, and bad parents are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_support import IMAGES, TOY, env, error_line, run_train

from tgan_deploy.checkpoint import load_checkpoint, load_generator
from tgan_deploy.io import file_sha256
from tgan_deploy.train.finetune import encoder_blocks


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parent") / "run"
    run_train(*TOY, "--steps", "60", "--out", str(out), "--set", "optim.lr_g=2e-3", "--set", "optim.lr_d=2e-3")
    return out


def _samples(run: Path) -> np.ndarray:
    # The raw weights: the child's EMA restarts its warm-up from the fine-tuned G (train/ema.py).
    generator, _, _ = load_generator(run, weights="raw")
    with torch.no_grad():
        return generator(torch.linspace(-2, 2, 64).view(32, 2)).numpy()


def test_a_one_step_fine_tune_starts_from_the_parent(parent: Path, tmp_path: Path) -> None:
    child, scratch = tmp_path / "child", tmp_path / "scratch"
    proc = run_train(*TOY, "--steps", "1", "--seed", "1", "--init-from", str(parent), "--out", str(child))
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("init-from")]
    assert len(lines) == 1 and "fresh optimiser state" in lines[0] and "fresh:" not in lines[0]
    run_train(*TOY, "--steps", "1", "--seed", "1", "--out", str(scratch))
    near = np.abs(_samples(child) - _samples(parent)).max()
    far = np.abs(_samples(scratch) - _samples(parent)).max()
    assert near < 0.05 * far, (near, far)
    sha = file_sha256(load_checkpoint(parent)["path"])
    assert f"init_from_sha256: {sha}" in (child / "config.yaml").read_text()
    export = subprocess.run([sys.executable, "-m", "tgan_deploy", "export", str(child), "--out", str(tmp_path / "x")],
                            env=env(), capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    assert json.loads((tmp_path / "x" / "model.json").read_text())["init_from_sha256"] == sha


def test_a_changed_class_count_refreshes_only_the_label_tables(tmp_path: Path) -> None:
    ring, grid = tmp_path / "ring", tmp_path / "grid"
    run_train(*[a if a != "builtin:grid25" else "builtin:ring8" for a in TOY], "--conditional", "--steps", "2",
              "--out", str(ring))
    proc = run_train(*TOY, "--conditional", "--steps", "1", "--init-from", str(ring), "--out", str(grid))
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("init-from"))
    fresh = line.split("fresh: ", 1)[1]
    assert fresh == "G: label_embedding.table; critic: projection; EMA: label_embedding.table", line


def test_freeze_d_keeps_the_first_critic_blocks(parent: Path, tmp_path: Path) -> None:
    child = tmp_path / "frozen"
    run_train(*TOY, "--steps", "3", "--init-from", str(parent), "--freeze-d", "1", "--out", str(child))
    theirs, ours = load_checkpoint(parent)["critic"], load_checkpoint(child)["critic"]
    first = ["encoder.body.0.weight", "encoder.body.0.bias"]  # the MLP encoder's first Linear layer
    assert all(torch.equal(ours[k], theirs[k]) for k in first)
    assert not torch.equal(ours["encoder.body.2.weight"], theirs["encoder.body.2.weight"])  # the next one trains


def test_freeze_d_counts_encoder_blocks() -> None:
    from tgan_deploy.config import TrainConfig
    from tgan_deploy.models import build_critic

    cfg = TrainConfig()
    cfg.model.resolution, cfg.model.channels, cfg.model.base_channels = 32, 1, 8
    assert len(encoder_blocks(build_critic(cfg.model).encoder)) == 3  # 3 conv layers at 32 px, BN with them


@pytest.mark.parametrize("case", ["missing", "other-resolution", "too-many-blocks"])
def test_bad_parents_are_one_line_and_nothing_is_written(parent: Path, tmp_path: Path, case: str) -> None:
    out = tmp_path / "run"
    args = {"missing": [*TOY, "--init-from", str(tmp_path / "nope")],
            "other-resolution": [*IMAGES, "--init-from", str(parent)],
            "too-many-blocks": [*TOY, "--init-from", str(parent), "--freeze-d", "9"]}[case]
    proc = run_train(*args, "--steps", "1", "--out", str(out), check=False)
    assert proc.returncode == 2
    assert {"missing": "does not exist", "other-resolution": "model.arch",
            "too-many-blocks": "encoder blocks"}[case] in error_line(proc)
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".lock"]

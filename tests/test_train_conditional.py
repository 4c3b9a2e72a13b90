"""tgan-train --conditional through the real CLI: classes into checkpoint and config.yaml, same-class "all"
pairing, an exact resume, and the one-line error for data without labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from train_support import TOY, error_line, losses, run_train

from tgan_deploy.checkpoint import load_checkpoint, load_generator
from tgan_deploy.train.rundir import holds_run

# grid25's 25 classes at batch 16: "all" pairing keeps only the same-class pairs (the pair-list path)
CONDITIONAL = [*TOY, "--conditional", "--pairing", "all", "--set", "run.deterministic=true",
               "--set", "run.log_every=1", "--set", "run.sample_every=2", "--set", "run.checkpoint_every=2"]


def test_conditional_run_records_classes_and_resumes_exactly(tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_train(*CONDITIONAL, "--steps", "4", "--out", str(straight))
    run_train(*CONDITIONAL, "--steps", "2", "--out", str(split))
    run_train("--out", str(split), "--steps", "4", "--resume")  # config (conditional, classes) from config.yaml
    assert len(losses(straight)) == 4 and losses(split) == losses(straight)
    state = load_checkpoint(straight)
    classes = [str(k) for k in range(25)]
    assert state["classes"] == classes and state["config"]["model"]["num_classes"] == 25
    config = yaml.safe_load((straight / "config.yaml").read_text())
    assert config["model"]["classes"] == classes and config["data"]["conditional"] is True
    assert "num_classes: 25  # data builtin:grid25" in (straight / "config.yaml").read_text()
    generator, _, _ = load_generator(straight)
    z = torch.zeros(2, 2)
    with torch.no_grad():
        assert not torch.equal(generator(z, torch.tensor([0, 0])), generator(z, torch.tensor([0, 24])))


def test_conditional_on_unlabelled_data_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "points.npz"
    np.savez(data, points=np.random.default_rng(0).normal(size=(64, 2)))
    out = tmp_path / "run"
    proc = run_train(*TOY, "--data", str(data), "--conditional", "--steps", "2", "--out", str(out), check=False)
    assert proc.returncode == 2
    assert "has no labels" in error_line(proc) and "'labels' array" in error_line(proc)
    assert not holds_run(out)

"""Resume, kill -9, Ctrl-C and the divergence guard, with real processes and real signals."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from train_support import TOY, env, error_line, losses, metrics, run_train, train_cmd, wait_for_records

from tgan_deploy.checkpoint import load_checkpoint
from tgan_deploy.run_layout import list_checkpoints

EXACT = [*TOY, "--pairing", "perm:2", "--set", "run.deterministic=true", "--set", "run.log_every=1",
         "--set", "run.sample_every=1000"]


def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_train(*EXACT, "--steps", "8", "--out", str(straight), "--set", "run.checkpoint_every=2")
    run_train(*EXACT, "--steps", "4", "--out", str(split), "--set", "run.checkpoint_every=2")
    run_train("--out", str(split), "--steps", "8", "--resume")  # config comes from split/config.yaml
    assert len(losses(straight)) == 8
    assert losses(split) == losses(straight)  # floats compared exactly
    a, b = load_checkpoint(straight), load_checkpoint(split)
    for key in ("generator", "generator_ema", "critic"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"


@pytest.mark.slow
def test_kill_9_during_training_and_checkpoint_writes_then_resume(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = [*EXACT, "--steps", "30", "--set", "run.checkpoint_every=1", "--set", "run.keep_last=3"]
    run_train(*args, "--out", str(straight))
    rng = random.Random(0)
    for attempt in range(4):
        cmd = train_cmd(*args, "--out", str(killed), *(["--resume"] if attempt else []))
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        done = len(losses(killed)) if (killed / "metrics.jsonl").exists() else 0
        wait_for_records(killed, done + 2, proc)
        time.sleep(rng.uniform(0.0, 0.3))  # checkpoint_every=1: most instants are inside a checkpoint write
        proc.kill()  # SIGKILL: no handler runs, no cleanup
        proc.wait()
    run_train(*args, "--out", str(killed), "--resume")
    # Every checkpoint left is complete and loadable; no temporary files survive a resume.
    found = list_checkpoints(killed)
    assert [p.name for p in found][-1] == "step-00000030.pt" and len(found) <= 3
    for path in found:
        assert load_checkpoint(path)["step"] >= 28
    assert not list(killed.rglob("*.tmp"))
    # And the interrupted run is the uninterrupted one, bit for bit.
    assert losses(killed) == losses(straight)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(*EXACT, "--steps", "100000", "--out", str(out),
                                      "--set", "run.checkpoint_every=100000"),
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_records(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    events = [r for r in metrics(out) if r.get("event") == "interrupted"]
    assert len(events) == 1
    step = events[0]["step"]
    assert load_checkpoint(out)["step"] == step >= 3
    run_train("--out", str(out), "--resume", "--steps", str(step + 2))
    assert [r[0] for r in losses(out)][-3:] == [step, step + 1, step + 2]


def test_divergence_rolls_back_with_a_lower_learning_rate(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # lr 1e30 really overflows (NaN on the first step); one rollback scales it by 1e-33 to a sane 1e-3.
    proc = run_train(*TOY, "--steps", "6", "--out", str(out), "--set", "optim.lr_g=1e30", "--set", "optim.lr_d=1e30",
                     "--set", "run.rollback_lr_factor=1e-33", "--set", "run.max_rollbacks=1",
                     "--set", "run.log_every=1", "--set", "run.checkpoint_every=2")
    events = [r["event"] for r in metrics(out) if "event" in r]
    assert events == ["diverged", "rollback"], proc.stderr
    rows = [r for r in metrics(out) if "d_loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["lr_d"] == pytest.approx(1e-3)
    state = load_checkpoint(out)
    assert state["trainer"]["rollbacks"] == 1
    assert all(torch.isfinite(t).all() for t in state["generator"].values() if t.is_floating_point())


def test_divergence_stop_exits_with_a_clear_message(tmp_path: Path) -> None:
    proc = run_train(*TOY, "--steps", "6", "--out", str(tmp_path / "run"), "--set", "optim.lr_d=1e30",
                     "--set", "optim.lr_g=1e30", "--set", "run.on_divergence=stop", check=False)
    assert proc.returncode == 3
    assert "diverged" in error_line(proc) and "lower optim.lr" in error_line(proc)
    assert not list_checkpoints(tmp_path / "run")

"""Helpers for the trainer's tests: run the real CLI in a real subprocess on tiny configs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _subprocess import repo_env

# Tiny models so each run takes seconds on one CPU thread. TOY's data brings the 2-D preset (arch mlp, ...);
# the generator EMA, which that preset turns off, is set back so the trainer's tests cover it.
TOY = ["--data", "builtin:grid25", "--set", "model.toy_hidden=16", "--set", "model.toy_depth=2",
       "--set", "model.head_hidden=16", "--batch-size", "16", "--set", "optim.ema_decay=0.999",
       "--set", "run.threads=1"]
IMAGES = ["--data", "builtin:mnist5k", "--resolution", "32", "--set", "model.channels=1",
          "--set", "model.base_channels=8", "--set", "model.head_hidden=16", "--set", "model.latent_dim=16",
          "--batch-size", "8", "--set", "run.threads=1", "--set", "run.sample_grid=4"]


def env() -> dict[str, str]:
    return repo_env(OMP_NUM_THREADS="1")


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tgan_deploy", "train", *args]


def run_train(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(train_cmd(*args), env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"tgan-train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> list[tuple[Any, ...]]:
    keys = ("step", "d_loss", "g_loss", "d_grad_norm", "g_grad_norm")
    return [tuple(r[k] for k in keys) for r in metrics(run_dir) if "d_loss" in r]


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line a user sees (asserting there is no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def wait_for_records(run_dir: Path, count: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until RUN_DIR/metrics.jsonl has `count` lines (or `proc` ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = run_dir / "metrics.jsonl"
        if path.exists() and path.read_text().count("\n") >= count:
            return
        if proc.poll() is not None:
            return
        time.sleep(0.05)
    raise AssertionError("training produced no metrics in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

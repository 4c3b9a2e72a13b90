"""One trainer per run directory, with real processes: a second tgan-train is refused and touches nothing,
`kill -9` leaves no stale lock, torchrun stops on every rank, and forked children do not keep the lock."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_support import TOY, env, error_line, free_port, losses, metrics, run_train, train_cmd, wait_for_records

from tgan_deploy.checkpoint import load_checkpoint
from tgan_deploy.errors import TganError
from tgan_deploy.run_layout import list_checkpoints
from tgan_deploy.train.runlock import LOCK_FILE, RunLockedError, run_lock

LONG = [*TOY, "--set", "run.log_every=5", "--set", "run.checkpoint_every=25", "--set", "run.sample_every=50",
        "--set", "run.keep_last=100", "--set", "run.tensorboard=false"]


def snapshot(run_dir: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under the run directory: (size, mtime_ns, sha256), temporaries of a writer included."""
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def assert_refused(proc: subprocess.CompletedProcess[str], holder: int) -> None:
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert f"is in use by another trainer (pid {holder} on {socket.gethostname()}, since 20" in line, line
    assert " preset: " not in proc.stderr  # the one line, nothing else printed first


def test_second_trainer_is_refused_and_the_first_run_is_unaffected(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(train_cmd(*LONG, "--steps", "200", "--out", str(out)), env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_records(out, 2, first)
        assert first.poll() is None, "the first run ended before the second could start"
        os.kill(first.pid, signal.SIGSTOP)  # frozen, so that any change to its files is the second trainer's
        before = snapshot(out)
        for extra in ([], ["--resume"], ["--force"], ["--resume", "--steps", "400"]):
            second = run_train(*LONG, "--steps", "200", "--out", str(out), *extra, check=False)
            assert_refused(second, first.pid)
        assert snapshot(out) == before  # no config.yaml rewrite, no metrics, no checkpoint, no tmp cleanup
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    steps = [r[0] for r in losses(out)]
    assert steps == list(range(5, 201, 5))  # every log interval once, in order: nothing interleaved
    found = list_checkpoints(out)
    assert [int(p.stem.split("-")[1]) for p in found] == list(range(25, 201, 25))
    for path in found:
        assert load_checkpoint(path)["step"] == int(path.stem.split("-")[1])


def test_kill_9_the_holder_then_resume_succeeds_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(train_cmd(*LONG, "--steps", "100000", "--out", str(out)), env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while not list_checkpoints(out) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.kill()  # SIGKILL: no handler, no cleanup; the kernel drops the lock
    first.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == first.pid  # what it left behind
    resumed = subprocess.Popen(train_cmd("--out", str(out), "--resume", "--steps", "150"), env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-3000:]
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == resumed.pid
    assert load_checkpoint(out)["step"] == 150 and [r["step"] for r in metrics(out) if "d_loss" in r][-1] == 150


@pytest.mark.slow
def test_torchrun_refused_on_every_rank_without_waiting(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_lock(out):  # this test process holds it, as another trainer would
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), "-m", "tgan_deploy.train", *TOY, "--steps", "3",
               "--out", str(out)]
        proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    refusals = [ln for ln in proc.stderr.splitlines() if "is in use by another trainer" in ln]
    assert len(refusals) == 2, proc.stderr[-3000:]  # rank 0 found the lock taken, rank 1 heard it from rank 0
    assert all(f"pid {os.getpid()} " in ln for ln in refusals)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


def test_lock_is_exclusive_and_forked_children_do_not_keep_it(tmp_path: Path) -> None:
    with run_lock(tmp_path / "run"):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on"), run_lock(tmp_path / "run"):
            pass
        ready, started = os.pipe()
        child = os.fork()
        if child == 0:  # a DataLoader worker, say: outlives the trainer for a moment
            os.write(started, b"1")  # fork's after-in-child hooks have run by now
            time.sleep(3)
            os._exit(0)
        assert os.read(ready, 1) == b"1"
    try:
        with run_lock(tmp_path / "run"):  # free at once, while the child still runs
            assert os.waitpid(child, os.WNOHANG) == (0, 0)
    finally:
        os.waitpid(child, 0)
        os.close(ready)
        os.close(started)


def test_an_output_that_cannot_be_a_run_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TganError, match="is a file, not a directory"), run_lock(tmp_path / "file"):
        pass
    with pytest.raises(TganError, match=r"cannot create .*/file/run/\.lock \(Not a directory\)"), \
            run_lock(tmp_path / "file" / "run"):
        pass

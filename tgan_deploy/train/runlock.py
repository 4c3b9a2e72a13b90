"""One trainer per run directory: an OS lock on RUN_DIR/.lock for the life of the run.

`fcntl.flock` is advisory and belongs to the open file: the kernel drops it when the process ends however
it ends (exit, crash, `kill -9`), so there is never a stale lock to clean up and `--resume` after a kill
starts at once. The file holds JSON {pid, host, since} of the holder, for the refusal message; it is
never deleted (deleting a lock file lets two processes lock two different files of the same name).
Under torchrun only rank 0 takes it (loop.py). Forked children (DataLoader workers) close their copy, so
a worker outliving a killed trainer for a moment does not hold the lock.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from tgan_deploy.errors import TganError

LOCK_FILE = ".lock"
_held: set[int] = set()  # file descriptors of locks this process holds (closed in forked children)


class RunLockedError(TganError):
    """Another trainer is writing to the run directory."""


def _close_in_child() -> None:
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while the block runs; RunLockedError (exit 2) naming the holder if
    another process has it. Creates the directory (and the lock file) if needed, writes nothing else."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TganError(f"output {run_dir} is a file, not a directory: choose another --out")
    path = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise TganError(f"cannot create {path} ({exc.strerror}): choose an --out you can write to") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLockedError(f"{run_dir} is in use by another trainer ({describe_holder(path)}): wait for it to "
                             "finish or stop it, then --resume; or choose another --out") from None
    except OSError as exc:  # a file system without locks
        os.close(fd)
        raise TganError(f"cannot lock {path} ({exc.strerror}): its file system does not support locks; "
                        "choose an --out on a local disk or a locking network file system") from exc
    try:
        since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
        _held.add(fd)
        yield
    finally:
        _held.discard(fd)
        os.close(fd)  # releases the lock


def read_holder(path: Path, attempts: int = 20) -> dict[str, object] | None:
    """The holder's record; None if unreadable. Retries briefly: a new holder truncates, then writes."""
    for _ in range(attempts):
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.read_text())
            if isinstance(record, dict):
                return record
        time.sleep(0.025)
    return None


def describe_holder(path: Path) -> str:
    record = read_holder(path)
    if record is None:
        return f"its details in {path} are unreadable"
    return f"pid {record.get('pid')} on {record.get('host')}, since {record.get('since')}"

"""Environment for tests that run the package in a subprocess: the repository root first on PYTHONPATH.

The root is computed from this file's location, so subprocesses import this checkout's tgan_deploy both in a
worktree run with PYTHONPATH set and in CI, where the package is installed editable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_env(**extra: str) -> dict[str, str]:
    """os.environ with REPO_ROOT first on PYTHONPATH (any existing entries kept after it), then `extra` merged."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath, **extra}


# Prepended to `python -c` code: makes `import torch` (and tensorrt, onnx) raise ImportError as if not installed.
BLOCK_TORCH = "import sys\nfor name in ('torch', 'tensorrt', 'onnx'):\n    sys.modules[name] = None\n"


def kill_9_mid_bulk_run(args: list[str], journal: Path, cwd: Path | None = None, parts: int = 2) -> None:
    """Run `python -m tgan_deploy *args` (a bulk job) and kill -9 it once `journal` records `parts` finished parts."""
    proc = subprocess.Popen([sys.executable, "-m", "tgan_deploy", *args], env=repo_env(), cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= parts) and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it could be killed: make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

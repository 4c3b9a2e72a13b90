"""Whether a new run may write into a run directory, and the cleaning before it does (layout: run_layout.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tgan_deploy.errors import TganError
from tgan_deploy.run_layout import (  # noqa: F401 (the layout names the loop reads as rundir.X)
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EVAL_PLOT,
    LATEST_SAMPLES,
    LOSS_PLOT,
    METRICS_FILE,
    RUN_ARTEFACTS,
    SAMPLES_DIR,
)


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (CONFIG_FILE, CHECKPOINT_DIR, METRICS_FILE))


def prepare(run_dir: Path, *, resume: bool, force: bool) -> None:
    """Refuse to write over another run unless --resume (continue it) or --force (replace it).

    Called with the run directory's lock held (runlock.py), which also made sure it is a directory."""
    if holds_run(run_dir) and not resume:
        if not force:
            raise TganError(f"{run_dir} already holds a run: pass --resume to continue it, --force to replace it, "
                            "or choose another --out")
        for name in RUN_ARTEFACTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    (run_dir / SAMPLES_DIR).mkdir(exist_ok=True)
    remove_stale_temporaries(run_dir)


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete `.NAME.XXXX.tmp` files that a killed process left mid-write (io.atomic_path's temporaries)."""
    for folder in (run_dir, run_dir / CHECKPOINT_DIR, run_dir / SAMPLES_DIR):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

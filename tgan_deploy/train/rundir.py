"""The run directory: what is in it, and whether a new run may write there.

    RUN_DIR/config.yaml             the resolved config (`tgan-train --config RUN_DIR/config.yaml` reruns it)
    RUN_DIR/checkpoints/step-XXXXXXXX.pt, best.pt
    RUN_DIR/metrics.jsonl           one JSON record per log interval (+ events)
    RUN_DIR/samples/step-XXXXXXXX.png, RUN_DIR/samples.png (the latest)
    RUN_DIR/losses.png              loss and gradient-norm curves
    RUN_DIR/tensorboard/            if the tensorboard package is installed
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tgan_deploy.checkpoint import CHECKPOINT_DIR
from tgan_deploy.errors import TganError
from tgan_deploy.train.logging import METRICS_FILE

CONFIG_FILE = "config.yaml"
SAMPLES_DIR = "samples"
LATEST_SAMPLES = "samples.png"
LOSS_PLOT = "losses.png"
EVAL_PLOT = "eval.png"
TENSORBOARD_DIR = "tensorboard"
# Everything a run writes; --force removes exactly these (and nothing else a person put there).
RUN_ARTEFACTS = (CONFIG_FILE, CHECKPOINT_DIR, METRICS_FILE, SAMPLES_DIR, LATEST_SAMPLES, LOSS_PLOT, EVAL_PLOT,
                 TENSORBOARD_DIR)


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

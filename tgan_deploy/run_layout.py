"""The run directory's layout: the names tgan-train writes, and which checkpoint a run directory means.

    RUN_DIR/config.yaml             the resolved config (`tgan-train --config RUN_DIR/config.yaml` reruns it)
    RUN_DIR/checkpoints/step-XXXXXXXX.pt   step checkpoints (newest = highest step)
    RUN_DIR/checkpoints/best.pt     the state at the best evaluation during training
    RUN_DIR/metrics.jsonl           one JSON record per log interval (+ events)
    RUN_DIR/samples/step-XXXXXXXX.png, RUN_DIR/samples.png (the latest)
    RUN_DIR/losses.png, eval.png    loss / gradient-norm and evaluation curves
    RUN_DIR/tensorboard/            if the tensorboard package is installed

Torch-free (names and paths only), so the runtime and the service recognise a run directory without the
training stack; the trainer (train/rundir.py), the checkpoint loader, export, runtime and serve all read it here.
"""

from __future__ import annotations

import re
from pathlib import Path

from tgan_deploy.errors import CheckpointError

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
STEP_FILE = re.compile(r"^step-(\d+)\.pt$")
BEST_FILE = "best.pt"
CHOICES = ("best", "last")  # which checkpoint of a run directory
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
LATEST_SAMPLES = "samples.png"
LOSS_PLOT = "losses.png"
EVAL_PLOT = "eval.png"
TENSORBOARD_DIR = "tensorboard"
# Everything a run writes; --force removes exactly these (and nothing else a person put there).
RUN_ARTEFACTS = (CONFIG_FILE, CHECKPOINT_DIR, METRICS_FILE, SAMPLES_DIR, LATEST_SAMPLES, LOSS_PLOT, EVAL_PLOT,
                 TENSORBOARD_DIR)


def step_file_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a run directory as the runtime and the service see one: it has a checkpoints/ folder."""
    return (path / CHECKPOINT_DIR).is_dir()


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Step checkpoints of a run directory, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("step-*.pt") if (m := STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(path: str | Path, which: str = "auto") -> Path:
    """A checkpoint file, or one of a run directory's (or its checkpoints/ folder's) checkpoints:
    which = "auto" (best.pt if there is one, else the newest step), "best" (best.pt) or "last" (newest step)."""
    p = Path(path)
    if p.is_dir():
        if p.name == CHECKPOINT_DIR and not is_run_dir(p):
            p = p.parent  # RUN_DIR/checkpoints given instead of RUN_DIR
        best = p / CHECKPOINT_DIR / BEST_FILE
        if which in ("auto", "best") and best.is_file():
            return best
        if which == "best":
            raise CheckpointError(f"{p} has no {CHECKPOINT_DIR}/{BEST_FILE}: it is written by evaluations during "
                                  "training (run.eval_every); use --checkpoint last")
        found = list_checkpoints(p)
        if not found:
            raise CheckpointError(f"{p} holds no checkpoints ({CHECKPOINT_DIR}/step-*.pt): "
                                  "train with tgan-train first, or pass a checkpoint file")
        return found[-1]
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist: pass a run directory or a .pt file")
    return p

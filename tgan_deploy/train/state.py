"""Trainer state <-> checkpoint files (the format itself is tgan_deploy.checkpoint's contract).

A training checkpoint holds, besides the contract's config/step/generator/generator_ema/critic:
    optim_g, optim_d   Adam state_dicts
    rng                every random state the run consumes, as tensors and plain ints (weights_only-safe):
                       torch (CPU), cuda (per device), numpy (global MT19937), python (random module),
                       noise (the trainer's z / GP generator), pairs (perm:K permutations)
    trainer            TrainerState's fields: lr_scale, rollbacks, g_loss_ema, best_score / best_step (the best
                       evaluation so far), and augment (ADA's p and its running signal)
    evaluation         the newest evaluation at or before this step (train/evaluation.py), or None
best.pt is a full training checkpoint of its own (the state when an evaluation beat every earlier one), never
pruned; tgan-export RUN exports it when it exists.
Checkpoints are written by rank 0 only; the RNG states are rank 0's (every random draw in the loop
comes from the two trainer generators, which are identical on every rank by construction).
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgan_deploy.checkpoint import load_checkpoint, save_checkpoint
from tgan_deploy.run_layout import BEST_FILE, CHECKPOINT_DIR, list_checkpoints, step_file_name


@dataclasses.dataclass
class TrainerState:
    """The trainer's own bookkeeping, saved as a checkpoint's "trainer" entry (beside the augmenter's state)."""

    lr_scale: float = 1.0  # multiplies optim.lr_g / lr_d; each rollback scales it by run.rollback_lr_factor
    rollbacks: int = 0
    g_loss_ema: float = math.nan  # smoothed generator loss (logged)
    best_score: float = math.inf  # the lowest evaluation so far (what best.pt holds) and its iteration
    best_step: int = -1
    pl_mean: float = 0.0  # the path-length target a of StyleGAN2 §3.2 (objective.pl_weight; train/style.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> TrainerState:
        """From a checkpoint's "trainer" entry; a field it lacks (a checkpoint written before the field existed,
        such as pl_mean) takes its default, and the best score is reconciled with best.pt after loading anyway;
        extra keys are not ours."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in entry.items() if name in names})

    def smooth_g_loss(self, loss: float, decay: float) -> None:
        """Fold the newest generator loss into g_loss_ema (its first value starts it)."""
        self.g_loss_ema = loss if math.isnan(self.g_loss_ema) else decay * self.g_loss_ema + (1 - decay) * loss

    def reconcile(self, best: dict[str, Any] | None) -> None:
        """Take best.pt's own evaluation record when it beats the state's: best.pt can be newer than the state
        being loaded (a rollback to an older checkpoint or to the initial state, or a kill between writing
        best.pt and the step file), and a best score older than best.pt would let a worse model replace it."""
        if best is not None and math.isfinite(best["value"]) and best["value"] < self.best_score:
            self.best_score, self.best_step = float(best["value"]), int(best["step"])


def capture_rng(noise: torch.Generator, pairs: torch.Generator) -> dict[str, Any]:
    mt_name, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": str(mt_name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": None if py_gauss is None else float(py_gauss)},
        "noise": noise.get_state(),
        "pairs": pairs.get_state(),
    }


def restore_rng(state: dict[str, Any], noise: torch.Generator, pairs: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    noise.set_state(state["noise"])
    pairs.set_state(state["pairs"])


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / step_file_name(step)


def write_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Atomically write step-XXXXXXXX.pt and prune step checkpoints to the newest `keep_last` (best.pt stays)."""
    path = checkpoint_path(run_dir, step)
    save_checkpoint(path, state)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def write_best(run_dir: Path, state: dict[str, Any]) -> Path:
    """Atomically (re)write best.pt: the training state at the best evaluation so far."""
    path = run_dir / CHECKPOINT_DIR / BEST_FILE
    save_checkpoint(path, state)
    return path


def best_evaluation(run_dir: Path) -> dict[str, Any] | None:
    """The evaluation record best.pt was saved for (None without one); a damaged best.pt raises CheckpointError."""
    path = run_dir / CHECKPOINT_DIR / BEST_FILE
    if not path.is_file():
        return None
    record = load_checkpoint(path).get("evaluation")
    return record if isinstance(record, dict) else None


def newest_checkpoint(run_dir: Path, map_location: torch.device) -> dict[str, Any] | None:
    """The newest step checkpoint of `run_dir`, loaded and validated; None if there is none.

    Writes are atomic, so a step file is complete unless something outside the trainer damaged it;
    then load_checkpoint raises a CheckpointError naming the file (the fix: delete it to resume from
    the one before).
    """
    found = list_checkpoints(run_dir)
    if not found:
        return None
    return load_checkpoint(found[-1], map_location=map_location)

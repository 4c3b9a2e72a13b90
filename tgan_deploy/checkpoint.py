"""The checkpoint contract: one loader that export, runtime and `--resume` all read through.

A checkpoint is one file, `torch.save` of a dict of tensors and plain Python values only:

    format         "tgan-deploy-checkpoint/1"
    config         TrainConfig.to_dict(): enough to rebuild every model without the trainer
    step           iterations completed
    generator      G's state_dict;  generator_ema: the EMA copy's (or absent)
    classes        class names in label-index order (class-conditional models, config model.num_classes > 0;
                   tgan-train also records them as config model.classes)
    critic         E + D state_dict (absent in generator-only exports)
    evaluation     the newest quality evaluation during training: {"step", "metric", "value", "feature_space",
                   "metrics"} (or None); in best.pt, the one it was saved for
    optim_g, optim_d, rng, trainer ...   trainer state, opaque here

It is written atomically (temp + rename) and read with `torch.load(weights_only=True)`, which
refuses arbitrary pickled objects. Where a run directory keeps its checkpoints, and which one a run directory
given where a checkpoint is expected means (best.pt, else the newest step), is run_layout.py's (torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tgan_deploy.checkpoint_metadata import WEIGHT_KEYS, WEIGHTS, sampling_weights
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import CheckpointError, TganError
from tgan_deploy.io import atomic_path
from tgan_deploy.run_layout import resolve_checkpoint

CHECKPOINT_FORMAT = "tgan-deploy-checkpoint/1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (must hold "config" and "step") atomically; adds the format tag."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", which: str = "auto") -> dict[str, Any]:
    """Read and validate a checkpoint file or run directory (`which`: resolve_checkpoint's); never unpickles
    arbitrary objects."""
    file = resolve_checkpoint(path, which)
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, forbidden pickled object ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{file} is not a readable checkpoint ({reason[:160]}): "
                              "it may be truncated or not a tgan-deploy checkpoint") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{file} is not a tgan-deploy checkpoint (no {CHECKPOINT_FORMAT!r} tag)")
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{file} carries no config mapping: it cannot be rebuilt")
    try:
        state["config_obj"] = TrainConfig.from_dict(state["config"])
    except TganError as exc:
        raise CheckpointError(f"{file} has an invalid config: {exc}") from exc
    model = state["config_obj"].model
    state["classes"] = checked_classes(state.get("classes") or model.classes or None, model.num_classes, str(file))
    state["path"] = str(file)
    return state


def checked_classes(classes: Any, num_classes: int, file: str) -> list[str]:
    """The checkpoint's class names: one unique string per class ("0".."N-1" if it names none); [] if unconditional."""
    if num_classes == 0:
        return []
    if classes is None:
        return [str(i) for i in range(num_classes)]
    if (not isinstance(classes, list) or len(classes) != num_classes or len(set(classes)) != num_classes
            or not all(isinstance(c, str) and c for c in classes)):
        raise CheckpointError(f"{file}: 'classes' must be {num_classes} distinct non-empty names (model.num_classes), "
                              f"got {str(classes)[:120]}")
    return list(classes)


def load_state_dict_checked(module: nn.Module, state_dict: dict[str, Any], what: str, file: str) -> None:
    """load_state_dict with a one-line error when the architecture does not match."""
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as exc:
        # torch's message is "Error(s) in loading state_dict for X:" then one indented line per problem
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = " ".join(lines[:2]) if lines else type(exc).__name__
        raise CheckpointError(f"{file}: {what} does not match the architecture in its config ({first[:160]})"
                              ) from exc


def load_generator(path: str | Path, weights: str = "ema", map_location: str | torch.device = "cpu",
                   which: str = "auto") -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the generator of a checkpoint in eval mode: (G, config, checkpoint dict).

    `weights`: "ema" (the EMA copy, falling back to raw weights if the run kept none) or "raw".
    """
    from tgan_deploy.models import build_generator

    if weights not in WEIGHTS:
        raise TganError(f"weights must be 'ema' or 'raw', got {weights!r}")
    state = load_checkpoint(path, map_location, which)
    key = WEIGHT_KEYS[sampling_weights(state, weights)]
    if state.get(key) is None:
        raise CheckpointError(f"{state['path']} holds no generator weights (a critic-only checkpoint?): "
                              "export from a checkpoint written by tgan-train")
    cfg: TrainConfig = state["config_obj"]
    generator = build_generator(cfg.model)
    load_state_dict_checked(generator, state[key], key, state["path"])
    return generator.eval(), cfg, state

"""rosinality/stylegan2-pytorch checkpoints (`train.py`'s `{"g", "d", "g_ema", "g_optim", "d_optim", "args", ...}`),
read by torch's weights-only loader with one extra allowed class, `argparse.Namespace` (the `args`)."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from tgan_deploy.errors import CheckpointError
from tgan_deploy.foreign.unpickler import UnsafePickleError
from tgan_deploy.io import file_sha256

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)|Unsupported global: ([\w.]+)|global '?([\w.]+)")


@dataclasses.dataclass
class RosinalityCheckpoint:
    path: Path
    sha256: str
    g_ema: dict[str, torch.Tensor]
    g: dict[str, torch.Tensor] | None
    d: dict[str, torch.Tensor] | None
    args: dict[str, Any]  # the training arguments (size, latent, n_mlp, channel_multiplier, ...) when recorded


def _refusal(path: Path, err: Exception) -> UnsafePickleError:
    # torch's weights-only error is a paragraph; the user needs the name the file asked for.
    found = _GLOBAL.search(str(err))
    name = next((g for g in found.groups() if g), "?") if found else "an object outside the allow-list"
    return UnsafePickleError(f"{path}: the file asks to load {name}, which a model checkpoint does not need: "
                             "refused, nothing was executed (only tensors and argparse.Namespace are read)")


def read_rosinality_checkpoint(path: str | Path) -> RosinalityCheckpoint:
    """The networks of a rosinality checkpoint; UnsafePickleError / CheckpointError (one line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: pass a rosinality stylegan2-pytorch checkpoint (.pt)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(err).__name__}): pass a "
                              "rosinality stylegan2-pytorch checkpoint (.pt)") from None
    if not isinstance(data, dict) or not isinstance(data.get("g_ema"), dict):
        raise CheckpointError(f"{path} has no 'g_ema' state dict: pass a checkpoint written by rosinality's "
                              "stylegan2-pytorch train.py")
    args = data.get("args")
    return RosinalityCheckpoint(path=path, sha256=file_sha256(path), g_ema=data["g_ema"], g=data.get("g"),
                                d=data.get("d"), args=vars(args) if isinstance(args, argparse.Namespace) else {})

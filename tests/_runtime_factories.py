"""The runtime tests' shared models: tiny checkpoints exported once per session by the real exporter.

Checkpoints come from tests/_factories.py and exports from tgan_deploy.export (the same path tgan-export
takes), so the runtime is tested on exactly what users will feed it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _factories import small_config, write_checkpoint

from tgan_deploy.checkpoint import load_generator
from tgan_deploy.export.pipeline import ExportOptions, run_export


def export(checkpoint: Path, out: Path, **options: Any) -> Path:
    """`checkpoint` exported to the directory `out` (ExportOptions fields as keywords); returns `out`.

    The exporter's own parity check is not enforced (check=False): the runtime tests compare with eager().
    """
    run_export(ExportOptions(checkpoint, out, check=False, **options), say=lambda _: None)
    return out


def eager(checkpoint: Path, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """PyTorch eager reference output (float32 numpy) for latents z (and int64 labels, for a conditional
    model), with the weights exports default to."""
    generator, _, _ = load_generator(checkpoint)
    inputs = [torch.from_numpy(z)] + ([] if labels is None else [torch.from_numpy(np.asarray(labels, np.int64))])
    with torch.inference_mode():
        out: np.ndarray = generator(*inputs).numpy()
    return out


@dataclasses.dataclass
class TinyModels:
    checkpoint: Path  # 32 px RGB DCGAN, latent 8, base width 4
    export: Path  # its float32 export directory
    export_uint8: Path  # the same model with uint8 post-processing in the graph
    toy_checkpoint: Path  # 2-D MLP generator (points)
    toy_export: Path
    cond_checkpoint: Path  # class-conditional 32 px RGB DCGAN, classes COND_CLASSES (label i = COND_CLASSES[i])
    cond_export: Path  # its float32 export directory (ONNX inputs z and label)


COND_CLASSES = ["cat", "dog", "seven"]


_SHARED: list[TinyModels] = []


def shared_tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Built once per test session, whichever test module asks first (each module wraps it in a fixture)."""
    if not _SHARED:
        _SHARED.append(_build_tiny_models(tmp_path_factory.mktemp("runtime-models")))
    return _SHARED[0]


def _build_tiny_models(tmp: Path) -> TinyModels:
    ckpt = write_checkpoint(tmp / "run" / "checkpoints" / "step-00000001.pt", small_config(), step=1)
    toy_ckpt = write_checkpoint(tmp / "toy" / "step-00000001.pt", small_config("mlp"), step=1)
    cond_ckpt = write_checkpoint(tmp / "cond" / "checkpoints" / "step-00000001.pt",
                                 small_config(num_classes=len(COND_CLASSES)), step=1, classes=COND_CLASSES)
    return TinyModels(ckpt, export(ckpt, tmp / "export"), export(ckpt, tmp / "export-u8", output="uint8"),
                      toy_ckpt, export(toy_ckpt, tmp / "toy-export"),
                      cond_ckpt, export(cond_ckpt, tmp / "cond-export"))

"""Fill the artefact contract (ArtefactMetadata) from a checkpoint's config and state."""

from __future__ import annotations

import datetime
from typing import Any

from tgan_deploy import __version__
from tgan_deploy.artefact import MODEL_JSON, ArtefactMetadata
from tgan_deploy.config import TrainConfig
from tgan_deploy.io import file_sha256, write_json_atomic


def build_metadata(cfg: TrainConfig, state: dict[str, Any], *, weights: str, output_dtype: str, opset: int,
                   batch_profile: tuple[int, int, int]) -> ArtefactMetadata:
    points = cfg.model.arch == "mlp"
    return ArtefactMetadata(
        kind="points" if points else "image",
        latent_dim=cfg.model.latent_dim,
        resolution=None if points else cfg.model.resolution,
        channels=None if points else cfg.model.channels,
        output_dtype="float32" if points else output_dtype,
        latent_distribution="normal",
        objective=cfg.objective.name,
        source_checkpoint_sha256=file_sha256(state["path"]),
        package_version=__version__,
        exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        weights="ema" if weights == "ema" and state.get("generator_ema") is not None else "raw",
        source_step=int(state["step"]) if isinstance(state.get("step"), int) else None,
        opset=opset,
        batch_profile=list(batch_profile),
        num_classes=cfg.model.num_classes,
        classes=list(state["classes"]),
        source_evaluation=state.get("evaluation") if isinstance(state.get("evaluation"), dict) else None,
        init_from_sha256=cfg.run.init_from_sha256,
    )


def write_model_json(folder: Any, meta: ArtefactMetadata) -> None:
    write_json_atomic(folder / MODEL_JSON, meta.to_dict())

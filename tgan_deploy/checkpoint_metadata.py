"""What a loaded checkpoint says about its generator, read without torch.

- `sampling_weights`: which generator weights sample, the EMA copy when asked for and the run kept one, else the
  raw weights (a run with EMA off has only those). The loader, export, evaluation and fine-tuning all ask here.
- `metadata_from_checkpoint`: the artefact metadata (artefact.py) of the checkpoint's generator, the one place it is
  built: `tgan-export` writes it to model.json, and the torch backend serves a checkpoint under it, so an image
  made from a checkpoint carries the same provenance (weights sha256, step, evaluation) as one made from its export.
  A field a checkpoint gains (a style model's `origin` record, say) is copied into the metadata here, once.
"""

from __future__ import annotations

import datetime
from typing import Any

from tgan_deploy import __version__
from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import TganError
from tgan_deploy.io import file_sha256

WEIGHTS = ("ema", "raw")
WEIGHT_KEYS = {"ema": "generator_ema", "raw": "generator"}  # the checkpoint key of each


def sampling_weights(state: dict[str, Any], weights: str = "ema") -> str:
    """"ema" if `weights` asks for the EMA copy and the checkpoint holds one, else "raw"."""
    if weights not in WEIGHTS:
        raise TganError(f"weights must be 'ema' or 'raw', got {weights!r}")
    return "ema" if weights == "ema" and state.get(WEIGHT_KEYS["ema"]) is not None else "raw"


def metadata_from_checkpoint(state: dict[str, Any], *, weights: str, output_dtype: str = "float32",
                             opset: int | None = None, batch_profile: tuple[int, int, int] | None = None,
                             files: dict[str, str] | None = None, exported: bool = False,
                             generator: Any = None) -> ArtefactMetadata:
    """The metadata of `state` (a load_checkpoint dict) sampled with `weights`; the export's own facts (output
    dtype, opset, engine batch profile, its files, `exported` = stamp the time) are the caller's. A style
    `generator` (the module built from `state`) adds its w fields, and the checkpoint's `origin` its rules."""
    cfg: TrainConfig = state["config_obj"]
    points = cfg.model.arch == "mlp"
    meta = ArtefactMetadata(
        kind="points" if points else "image",
        latent_dim=cfg.model.latent_dim,
        resolution=None if points else cfg.model.resolution,
        channels=None if points else cfg.model.channels,
        output_dtype="float32" if points else output_dtype,
        latent_distribution="normal",
        objective=cfg.objective.name,
        source_checkpoint_sha256=file_sha256(state["path"]),
        package_version=__version__,
        exported_at=(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds") if exported
                     else ""),
        files=dict(files or {}),
        weights=sampling_weights(state, weights),
        source_step=int(state["step"]) if isinstance(state.get("step"), int) else None,
        opset=opset,
        batch_profile=list(batch_profile or ()),
        num_classes=cfg.model.num_classes,
        classes=list(state["classes"]),
        source_evaluation=state.get("evaluation") if isinstance(state.get("evaluation"), dict) else None,
        init_from_sha256=cfg.run.init_from_sha256,
    )
    return with_style_fields(meta, generator, state.get("origin") or {})


def is_style_generator(generator: Any) -> bool:
    """The style interface (docs/stylegan.md): mapping and synthesis callables, w_avg, num_ws and w_dim."""
    return all(hasattr(generator, name) for name in ("mapping", "synthesis", "w_avg", "num_ws", "w_dim"))


def with_style_fields(meta: ArtefactMetadata, generator: Any, origin: dict[str, Any]) -> ArtefactMetadata:
    """`meta` with the w fields of a style generator and the rules its checkpoint's `origin` records (family,
    source format, seed and pixel rules, the source file's sha256)."""
    for key in ("family", "source_format", "seed_rule", "pixel_rule"):
        if origin.get(key):
            setattr(meta, key, str(origin[key]))
    if origin.get("source_sha256"):
        meta.source_checkpoint_sha256 = str(origin["source_sha256"])
    if generator is not None and is_style_generator(generator):
        meta.w_dim, meta.num_ws = int(generator.w_dim), int(generator.num_ws)
        meta.w_avg = [float(v) for v in generator.w_avg.detach().float().cpu().reshape(-1).tolist()]
    meta.check_rules()
    return meta

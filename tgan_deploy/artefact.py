"""The artefact contract between export and runtime: what an exported model carries about itself.

An export directory holds `generator.onnx` (and optionally `generator.fp16.onnx`, TensorRT `*.plan`
engines) plus `model.json`. The same metadata is stored in each ONNX file's `metadata_props`, one
entry per field, JSON-encoded, so a lone `.onnx` file still describes itself.

Tensors: input `z` float32 [batch, latent_dim]; a class-conditional model (`num_classes > 0`) takes a
second input `label` int64 [batch] (class index into `classes`); unconditional exports have no such
input. Output `image` float32 [batch, C, H, W] in [-1, 1]
(or uint8 [batch, C, H, W] in [0, 255] with `output_dtype="uint8"`); a 2-D toy model outputs
`points` float32 [batch, 2].
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tgan_deploy.errors import TganError

ARTEFACT_FORMAT = "tgan-deploy-artefact/1"
MODEL_JSON = "model.json"
INPUT_NAME = "z"
LABEL_NAME = "label"  # second input of class-conditional exports only
IMAGE_OUTPUT = "image"
POINTS_OUTPUT = "points"


@dataclasses.dataclass
class ArtefactMetadata:
    kind: str  # "image" or "points" (2-D toy data)
    latent_dim: int
    resolution: int | None  # None for "points"
    channels: int | None
    output_dtype: str = "float32"  # "float32" ([-1, 1]) or "uint8" ([0, 255])
    latent_distribution: str = "normal"  # z ~ N(0, I); seeds map to z by runtime.latents
    objective: str = ""
    source_checkpoint_sha256: str = ""
    package_version: str = ""
    exported_at: str = ""
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # role -> file name in the export dir
    num_classes: int = 0  # 0: unconditional; else the `label` input takes 0..num_classes-1
    classes: list[str] = dataclasses.field(default_factory=list)  # class names, index order (len num_classes)
    # Added by the exporter (informational; readers may ignore them):
    weights: str = ""  # "ema" or "raw": which generator weights of the checkpoint were exported
    source_step: int | None = None  # training step of the source checkpoint
    opset: int | None = None  # ONNX opset of the exported graphs
    batch_profile: list[int] = dataclasses.field(default_factory=list)  # [min, opt, max] batch of the engines
    # The source checkpoint's newest evaluation during training ({"step", "metric", "value", "feature_space",
    # "metrics"}; for best.pt the score that made it best), and the sha256 of the checkpoint it was fine-tuned from.
    source_evaluation: dict[str, Any] | None = None
    init_from_sha256: str = ""
    # Style models (StyleGAN2/3 imported from NVlabs / rosinality files; docs/stylegan.md). Defaults: our models.
    family: str = ""  # "" our reference models; "stylegan2" / "stylegan3"
    source_format: str = ""  # "" ours; "nvlabs-pkl" / "rosinality-pt"
    # "tgan": default_rng(s).standard_normal(dim); "nvlabs": np.random.RandomState(s).randn(1, dim)[0] (NVlabs
    # generate.py / gen_images.py); both computed in float64 then cast to float32
    seed_rule: str = "tgan"
    # float image -> uint8: "tgan" = round((x + 1) * 127.5), clamped; "nvlabs" = clamp(x * 127.5 + 128, 0, 255)
    # then truncated (NVlabs' generate.py)
    pixel_rule: str = "tgan"
    w_dim: int = 0
    num_ws: int = 0
    w_avg: list[float] = dataclasses.field(default_factory=list)  # the file's tracked mean of w
    default_psi: float = 1.0
    format: str = ARTEFACT_FORMAT

    @property
    def output_name(self) -> str:
        return POINTS_OUTPUT if self.kind == "points" else IMAGE_OUTPUT

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def output_range(self) -> tuple[float, float]:
        return (0.0, 255.0) if self.output_dtype == "uint8" else (-1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["output_range"] = list(self.output_range)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtefactMetadata:
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt != ARTEFACT_FORMAT:
            raise TganError(
                f"not a tgan-deploy artefact (format {fmt!r}, expected {ARTEFACT_FORMAT!r}): "
                "export it with `tgan-export`"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:  # a required field is missing
            raise TganError(f"artefact metadata is incomplete ({exc}): re-export it with `tgan-export`") from exc

    def to_onnx_props(self) -> dict[str, str]:
        """`metadata_props` entries: one per field, JSON-encoded values."""
        return {k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_onnx_props(cls, props: dict[str, str]) -> ArtefactMetadata:
        return cls.from_dict({k: json.loads(v) for k, v in props.items() if k != "output_range"})

    @classmethod
    def read_json(cls, path: str | Path) -> ArtefactMetadata:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise TganError(f"cannot read artefact metadata {path}: {exc}; re-run tgan-export") from exc

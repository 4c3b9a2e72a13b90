"""The artefact contract between export and runtime: what an exported model carries about itself.

An export directory holds `generator.onnx` (and optionally `generator.fp16.onnx`, TensorRT `*.plan`
engines) plus `model.json`. The same metadata is stored in each ONNX file's `metadata_props`, one
entry per field, JSON-encoded, so a lone `.onnx` file still describes itself.

Tensors: input `z` float32 [batch, latent_dim]; a class-conditional model (`num_classes > 0`) takes a
second input `label` int64 [batch] (class index into `classes`); unconditional exports have no such
input. Output `image` float32 [batch, C, H, W] in [-1, 1]
(or uint8 [batch, C, H, W] in [0, 255] with `output_dtype="uint8"`); a 2-D toy model outputs
`points` float32 [batch, 2].

Style models (StyleGAN2/3, imported: docs/stylegan.md) also have `mapping.onnx` (`z`[, `label`] -> `ws`
float32 [batch, num_ws, w_dim], untruncated) and `synthesis.onnx` (`ws` -> `image`), files roles
"mapping" and "synthesis"; their image is the original G's output (float32, not clamped) or uint8 by
`pixel_rule`. The runtime applies truncation in w, style mixing and walks between the two
(docs/runtime.md, "w-space").
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
WS_NAME = "ws"  # mapping.onnx's output and synthesis.onnx's input (style models)
IMAGE_OUTPUT = "image"
POINTS_OUTPUT = "points"
MAPPING_ROLE, SYNTHESIS_ROLE = "mapping", "synthesis"  # `files` roles of a style model's two graphs
SEED_RULES = ("tgan", "nvlabs")  # runtime/latents.py applies them
PIXEL_RULES = ("tgan", "nvlabs")  # runtime/images.py (and export/onnx.py in the graph) apply them


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
    # Style models (docs/stylegan.md); the defaults are our own models', so older model.json files load unchanged.
    family: str = ""  # "" our reference models; "stylegan2" / "stylegan3"
    source_format: str = ""  # "" ours; "nvlabs-pkl" / "rosinality-pt"
    seed_rule: str = "tgan"  # how a seed becomes z: runtime/latents.py
    pixel_rule: str = "tgan"  # how a float image becomes uint8: runtime/images.py
    w_dim: int = 0  # width of w (0: no mapping network)
    num_ws: int = 0  # ws per image, one per synthesis layer input
    w_avg: list[float] = dataclasses.field(default_factory=list)  # the mapping network's tracked mean of w
    default_psi: float = 1.0  # the truncation psi generator.onnx was exported with (psi=None means this)
    format: str = ARTEFACT_FORMAT

    @property
    def output_name(self) -> str:
        return POINTS_OUTPUT if self.kind == "points" else IMAGE_OUTPUT

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def w_space(self) -> bool:
        """A model with a mapping network: psi is truncation in w, and style mixing and w walks apply."""
        return self.num_ws > 0 and self.w_dim > 0

    @property
    def output_range(self) -> tuple[float, float]:
        return (0.0, 255.0) if self.output_dtype == "uint8" else (-1.0, 1.0)

    def check_rules(self) -> None:
        """TganError unless the seed and pixel rules are ones this version knows, and w_avg fits w_dim."""
        for name, value, known in (("seed_rule", self.seed_rule, SEED_RULES),
                                   ("pixel_rule", self.pixel_rule, PIXEL_RULES)):
            if value not in known:
                raise TganError(f"{name} {value!r} is not one of {', '.join(known)}: the model was exported by "
                                "another tgan-deploy version; update tgan-deploy or re-export it")
        if self.w_space and len(self.w_avg) != self.w_dim:
            raise TganError(f"w_avg has {len(self.w_avg)} values for w_dim {self.w_dim}: re-export the model")

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
            meta = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:  # a required field is missing
            raise TganError(f"artefact metadata is incomplete ({exc}): re-export it with `tgan-export`") from exc
        meta.check_rules()
        return meta

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

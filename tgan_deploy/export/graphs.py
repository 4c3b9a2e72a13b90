"""The graphs an export writes: one `generator.onnx` for our reference models; for style models (StyleGAN2/3,
docs/stylegan.md) `generator.onnx` (z [, label] -> image at psi `default_psi`), `mapping.onnx` (z [, label] -> ws,
untruncated) and `synthesis.onnx` (ws -> image). Each `Graph` says what to export, which roles its files get in
model.json, and how the parity check and the fp16 calibration feed it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from tgan_deploy.artefact import (
    IMAGE_OUTPUT,
    INPUT_NAME,
    LABEL_NAME,
    MAPPING_ROLE,
    SYNTHESIS_ROLE,
    WS_NAME,
    ArtefactMetadata,
)
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export.fp16 import calibration_feeds
from tgan_deploy.export.parity import Feeds, latent_feeds

STYLE_ARCHS = ("stylegan2", "stylegan3")
WS_KIND = "ws"  # parity kind of the mapping graph's output (no fixed range)
# Op types that draw random numbers: a graph holding one would give another image every run (TensorRT rejects
# RandomNormalLike, issue 26); style models take their noise from the file's constant buffers instead.
# A style generator (docs/stylegan.md; models/stylegan2.py): mapping(z, label) -> ws, synthesis(ws) -> image, buffer
# w_avg, attributes z_dim, w_dim, num_ws, num_classes. Typed Any: nn.Module's attribute typing cannot say it.
StyleModel = Any
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                        "Bernoulli"})


@dataclasses.dataclass
class Graph:
    name: str  # file stem: "generator", "mapping", "synthesis"
    roles: tuple[str, ...]  # model.json roles of the fp32 file (first: the role engines and reports are named by)
    fp16_roles: tuple[str, ...]
    reference: nn.Module  # the float computation in eager torch (eval copy)
    exported: nn.Module  # what goes into ONNX: `reference`, plus the uint8 post-processing when asked
    example: dict[str, torch.Tensor]  # export inputs by name (batch EXPORT_BATCH)
    input_shapes: dict[str, tuple[int, ...]]  # per-sample shapes (no batch axis), for engine profiles
    output_name: str
    output_dtype: str  # "float32" / "uint8"
    kind: str  # parity's: "image", "points", "ws"
    inputs: Feeds  # parity inputs per batch
    calibration: Callable[[], dict[str, np.ndarray]]  # fp16 calibration inputs
    fp16_peak: float | None  # PSNR peak of the output (None: the reference's value range)

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    @property
    def fp16_file(self) -> str:
        return f"{self.name}.fp16.onnx"

    def engine_role(self, target: str) -> str:
        """model.json role of this graph's engine: "tensorrt_rtx" for the generator, "mapping_tensorrt_rtx" ..."""
        base = target.replace("-", "_")
        return base if self.name == "generator" else f"{self.name}_{base}"


def _example(latent_dim: int, num_classes: int) -> dict[str, torch.Tensor]:
    example = {INPUT_NAME: torch.randn(onnx_mod.EXPORT_BATCH, latent_dim)}
    if num_classes > 0:
        example[LABEL_NAME] = torch.arange(onnx_mod.EXPORT_BATCH) % num_classes
    return example


def _latent_shapes(latent_dim: int, num_classes: int) -> dict[str, tuple[int, ...]]:
    return {INPUT_NAME: (latent_dim,), **({LABEL_NAME: ()} if num_classes > 0 else {})}


def _psnr_peak(kind: str, output_dtype: str) -> float | None:
    if kind != "image":
        return None  # 2-D points, ws: the reference's own value range
    return 255.0 if output_dtype == "uint8" else 2.0


def reference_graph(generator: nn.Module, meta: ArtefactMetadata) -> Graph:
    """Our reference models (dcgan, mlp): `generator.onnx` only, roles "onnx" / "onnx_fp16" as ever."""
    latent, classes = meta.latent_dim, meta.num_classes
    return Graph("generator", ("onnx",), ("onnx_fp16",), onnx_mod.prepare_for_export(generator),
                 onnx_mod.prepare_for_export(generator, meta.output_dtype), _example(latent, classes),
                 _latent_shapes(latent, classes), meta.output_name, meta.output_dtype, meta.kind,
                 latent_feeds(latent, classes), lambda: calibration_feeds(latent, classes),
                 _psnr_peak(meta.kind, meta.output_dtype))


class TruncatedGenerator(nn.Module):
    """generator.onnx of a style model: mapping, StyleGAN truncation w_avg + psi (w - w_avg) on every layer
    (NVlabs' `truncation_psi`, no cutoff), synthesis. psi 1 is the original G unchanged."""

    def __init__(self, style: StyleModel, psi: float) -> None:
        super().__init__()
        self.style: StyleModel = style
        self.psi = psi

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        ws = self.style.mapping(z, label)
        if self.psi != 1.0:
            ws = self.style.truncate(ws, self.psi)
        return self.style.synthesis(ws)


class Mapping(nn.Module):
    """mapping.onnx: z [, label] -> ws [B, num_ws, w_dim], untruncated."""

    def __init__(self, style: StyleModel) -> None:
        super().__init__()
        self.style: StyleModel = style

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.style.mapping(z, label)


class Synthesis(nn.Module):
    """synthesis.onnx: ws [B, num_ws, w_dim] -> image."""

    def __init__(self, style: StyleModel) -> None:
        super().__init__()
        self.style: StyleModel = style

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.style.synthesis(ws)


def _mapped(mapping: nn.Module, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ws of the generator's inputs, through the eager mapping network: what synthesis.onnx is fed."""
    with torch.no_grad():
        ws = mapping(*(torch.from_numpy(a) for a in given.values()))
    return {WS_NAME: ws.numpy()}


def style_graphs(generator: StyleModel, meta: ArtefactMetadata) -> list[Graph]:
    """The three graphs of a style model (`meta`: its metadata with default_psi, output dtype, pixel rule)."""
    latent, classes, dtype, rule = meta.latent_dim, meta.num_classes, meta.output_dtype, meta.pixel_rule
    style: StyleModel = onnx_mod.prepare_for_export(generator)
    mapping = Mapping(style).eval()
    latent_inputs = latent_feeds(latent, classes)

    def latent_calibration() -> dict[str, np.ndarray]:
        return calibration_feeds(latent, classes)
    ws_shape = (int(generator.num_ws), int(generator.w_dim))

    def as_exported(module: nn.Module) -> nn.Module:
        return onnx_mod.UInt8Output(module, rule).eval() if dtype == "uint8" else module

    full = TruncatedGenerator(style, meta.default_psi).eval()
    synthesis = Synthesis(style).eval()
    return [
        Graph("generator", ("generator", "onnx"), ("generator_fp16", "onnx_fp16"), full, as_exported(full),
              _example(latent, classes), _latent_shapes(latent, classes), IMAGE_OUTPUT, dtype, "image",
              latent_inputs, latent_calibration, _psnr_peak("image", dtype)),
        Graph(MAPPING_ROLE, (MAPPING_ROLE,), (f"{MAPPING_ROLE}_fp16",), mapping, mapping, _example(latent, classes),
              _latent_shapes(latent, classes), WS_NAME, "float32", WS_KIND, latent_inputs, latent_calibration,
              None),
        Graph(SYNTHESIS_ROLE, (SYNTHESIS_ROLE,), (f"{SYNTHESIS_ROLE}_fp16",), synthesis, as_exported(synthesis),
              {WS_NAME: torch.randn(onnx_mod.EXPORT_BATCH, *ws_shape)}, {WS_NAME: ws_shape}, IMAGE_OUTPUT, dtype,
              "image", lambda batch: _mapped(mapping, latent_inputs(batch)),
              lambda: _mapped(mapping, latent_calibration()), _psnr_peak("image", dtype)),
    ]

"""A tiny stand-in style model (the contract's torch interface) and its export: the runtime's w-space fixture.

`TinyStyle` has what docs/stylegan.md's torch interface promises (`mapping(z, label) -> ws`, `synthesis(ws)
-> image`, `forward`, buffer `w_avg`, attributes z_dim/w_dim/num_ws/num_classes/resolution/channels) in a
few hundred parameters: every ws layer modulates the image differently, so a wrong layer in truncation or
mixing changes the image. `export_style` writes generator.onnx, mapping.onnx and synthesis.onnx (dynamic
batch, torch.onnx.export) and a model.json with the style fields, as the real exporter's directory is laid
out; the real exporter and architectures are tested by their own helpers' tests.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, MODEL_JSON, WS_NAME, ArtefactMetadata
from tgan_deploy.io import write_json_atomic


class TinyStyle(nn.Module):
    def __init__(self, z_dim: int = 8, w_dim: int = 6, num_ws: int = 4, resolution: int = 8, channels: int = 3,
                 num_classes: int = 0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.num_classes, self.resolution, self.channels = num_classes, resolution, channels
        self.fc1 = nn.Linear(z_dim + num_classes, w_dim)
        self.fc2 = nn.Linear(w_dim, w_dim)
        self.register_buffer("w_avg", torch.randn(w_dim) * 0.5)  # far from 0: truncation visibly moves ws
        self.const = nn.Parameter(torch.randn(4, 4, 4))
        self.affines = nn.ModuleList(nn.Linear(w_dim, 4) for _ in range(num_ws))
        self.to_rgb = nn.Conv2d(4, channels, 1)

    def mapping(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        x = z * torch.rsqrt((z * z).mean(dim=1, keepdim=True) + 1e-8)  # StyleGAN's pixel norm of z
        if self.num_classes:
            x = torch.cat([x, nn.functional.one_hot(label, self.num_classes).to(x.dtype)], dim=1)
        w = self.fc2(nn.functional.leaky_relu(self.fc1(x), 0.2))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        for i, affine in enumerate(self.affines):  # layer i: its own style, at its own scale
            x = torch.tanh(x * (1 + affine(ws[:, i]))[:, :, None, None])
            if x.shape[-1] < self.resolution:
                x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return self.to_rgb(x) * 1.5  # not clamped: can leave [-1, 1], as StyleGAN's images do

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, label))


class _Generator(nn.Module):
    """generator.onnx's graph: mapping, truncation in w at `psi` (all layers), synthesis."""

    def __init__(self, model: TinyStyle, psi: float) -> None:
        super().__init__()
        self.model, self.psi = model, psi

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        ws = self.model.mapping(z, label)
        ws = self.model.w_avg + self.psi * (ws - self.model.w_avg)
        return self.model.synthesis(ws)


class _Mapping(nn.Module):
    def __init__(self, model: TinyStyle) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.mapping(z, label)


class _Synthesis(nn.Module):
    def __init__(self, model: TinyStyle) -> None:
        super().__init__()
        self.model = model

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.model.synthesis(ws)


def _export(module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], output: str,
            path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        torch.onnx.export(module.eval(), example, str(path), input_names=names, output_names=[output],
                          dynamic_shapes=tuple({0: batch} for _ in names), dynamo=True, verbose=False)


def style_metadata(model: TinyStyle, seed_rule: str = "nvlabs", pixel_rule: str = "nvlabs",
                   default_psi: float = 1.0) -> ArtefactMetadata:
    return ArtefactMetadata(
        kind="image", latent_dim=model.z_dim, resolution=model.resolution, channels=model.channels,
        num_classes=model.num_classes, classes=[str(i) for i in range(model.num_classes)],
        files={"generator": "generator.onnx", "mapping": "mapping.onnx", "synthesis": "synthesis.onnx"},
        family="stylegan2", source_format="nvlabs-pkl", seed_rule=seed_rule, pixel_rule=pixel_rule,
        w_dim=model.w_dim, num_ws=model.num_ws, w_avg=[float(v) for v in model.w_avg.tolist()],
        default_psi=default_psi, source_checkpoint_sha256="0" * 64)


def export_style(model: TinyStyle, out: Path, **meta: object) -> Path:
    """The three graphs and model.json of `model` in directory `out` (created); returns `out`."""
    out.mkdir(parents=True, exist_ok=True)
    metadata = style_metadata(model, **meta)  # type: ignore[arg-type]
    z = torch.randn(2, model.z_dim)
    latent = (z, torch.tensor([0, 1]) % max(1, model.num_classes)) if model.num_classes else (z,)
    latent_names = [INPUT_NAME, LABEL_NAME] if model.num_classes else [INPUT_NAME]
    _export(_Generator(model, metadata.default_psi), latent, latent_names, "image", out / "generator.onnx")
    _export(_Mapping(model), latent, latent_names, WS_NAME, out / "mapping.onnx")
    _export(_Synthesis(model), (torch.randn(2, model.num_ws, model.w_dim),), [WS_NAME], "image",
            out / "synthesis.onnx")
    write_json_atomic(out / MODEL_JSON, metadata.to_dict())
    return out


_SHARED: dict[str, tuple[TinyStyle, Path]] = {}


def shared_style_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyStyle, Path]:
    """(stand-in, its export directory), built once per test session whichever module asks first."""
    if "style" not in _SHARED:
        model = TinyStyle().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the dynamo exporter's notes about absent ops
            _SHARED["style"] = (model, export_style(model, tmp_path_factory.mktemp("style") / "export"))
    return _SHARED["style"]

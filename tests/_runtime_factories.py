"""Test-only factory: a tiny generator -> checkpoint -> ONNX export with artefact metadata.

A stand-in for the real exporter (tgan_deploy.export, written in parallel) so the runtime's tests do
not depend on it; it follows the same contract (tgan_deploy/artefact.py). Uses the legacy TorchScript
exporter (fast; the generator has no spectral norm) with a dynamic batch axis.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tgan_deploy.artefact import INPUT_NAME, MODEL_JSON, ArtefactMetadata
from tgan_deploy.checkpoint import load_generator, save_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.models import build_generator


def tiny_config(arch: str = "dcgan", resolution: int = 32, channels: int = 3, latent_dim: int = 8,
                base_channels: int = 4) -> TrainConfig:
    cfg = TrainConfig()
    cfg.model.arch = arch
    cfg.model.resolution = resolution
    cfg.model.channels = channels
    cfg.model.latent_dim = latent_dim
    cfg.model.base_channels = base_channels
    cfg.model.toy_hidden = 16
    cfg.model.toy_depth = 2
    cfg.validate()
    return cfg


def make_checkpoint(path: Path, cfg: TrainConfig, seed: int = 0) -> Path:
    """Random weights, with BatchNorm running statistics moved off their (0, 1) defaults."""
    torch.manual_seed(seed)
    generator = build_generator(cfg.model)
    for module in generator.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    save_checkpoint(path, {"config": cfg.to_dict(), "step": 1, "generator": generator.state_dict()})
    return path


class _ToUint8(nn.Module):
    """In-graph post-processing: the uint8 contract of tgan_deploy.runtime.images.to_uint8."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.round((self.generator(z) + 1.0) * 127.5)
        return torch.clamp(x, 0, 255).to(torch.uint8)


def export_onnx(checkpoint: Path, out_dir: Path, uint8: bool = False, write_model_json: bool = True,
                file_name: str = "generator.onnx") -> Path:
    """Export `checkpoint` to OUT_DIR/generator.onnx (+ model.json); returns the directory."""
    import onnx

    generator, cfg, _ = load_generator(checkpoint)
    points = cfg.model.arch == "mlp"
    meta = ArtefactMetadata(
        kind="points" if points else "image", latent_dim=cfg.model.latent_dim,
        resolution=None if points else cfg.model.resolution, channels=None if points else cfg.model.channels,
        output_dtype="uint8" if uint8 else "float32", objective=cfg.objective.name, files={"onnx": file_name})
    model: nn.Module = _ToUint8(generator) if uint8 else generator
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_file = out_dir / file_name
    with warnings.catch_warnings():  # the legacy exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), (torch.zeros(2, cfg.model.latent_dim),), str(onnx_file), dynamo=False,
                          input_names=[INPUT_NAME], output_names=[meta.output_name],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, meta.output_name: {0: "batch"}}, opset_version=17)
    proto = onnx.load(str(onnx_file))
    for key, value in meta.to_onnx_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(onnx_file))
    if write_model_json:
        (out_dir / MODEL_JSON).write_text(json.dumps(meta.to_dict(), indent=2))
    return out_dir


def build_engine(trt: Any, onnx_file: Path, engine_file: Path, latent_dim: int) -> None:
    """A strict-fp32 dynamic-batch engine (profile 1/16/64) with TensorRT's (or TensorRT-RTX's) builder."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_file.read_bytes()), parser.get_error(0)
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape("z", (1, latent_dim), (16, latent_dim), (64, latent_dim))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "TensorRT could not build the engine"
    engine_file.write_bytes(bytes(serialized))


def eager(checkpoint: Path, z: np.ndarray) -> np.ndarray:
    """PyTorch eager reference output (float32 numpy) for latents z."""
    generator, _, _ = load_generator(checkpoint)
    with torch.inference_mode():
        out: np.ndarray = generator(torch.from_numpy(z)).numpy()
    return out


@dataclasses.dataclass
class TinyModels:
    checkpoint: Path  # 32 px RGB DCGAN, latent 8, base width 4
    export: Path  # its float32 export directory
    export_uint8: Path  # the same model with uint8 post-processing in the graph
    toy_checkpoint: Path  # 2-D MLP generator (points)
    toy_export: Path


_SHARED: list[TinyModels] = []


def shared_tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Built once per test session, whichever test module asks first (each module wraps it in a fixture)."""
    if not _SHARED:
        _SHARED.append(_build_tiny_models(tmp_path_factory.mktemp("runtime-models")))
    return _SHARED[0]


def _build_tiny_models(tmp: Path) -> TinyModels:
    cfg = tiny_config()
    ckpt = make_checkpoint(tmp / "run" / "checkpoints" / "step-00000001.pt", cfg)
    toy_cfg = tiny_config(arch="mlp", latent_dim=2)
    toy_ckpt = make_checkpoint(tmp / "toy" / "step-00000001.pt", toy_cfg)
    return TinyModels(ckpt, export_onnx(ckpt, tmp / "export"), export_onnx(ckpt, tmp / "export-u8", uint8=True),
                      toy_ckpt, export_onnx(toy_ckpt, tmp / "toy-export"))


def repo_env() -> dict[str, str]:
    """Environment for subprocesses: the repository root first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


REPO_ROOT = Path(__file__).resolve().parents[1]

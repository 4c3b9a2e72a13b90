"""Build small real checkpoints without the trainer (for export and runtime tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tgan_deploy.checkpoint import save_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.models import build_critic, build_generator


def small_config(arch: str = "dcgan", resolution: int = 32, *, base_channels: int = 4, latent_dim: int = 8,
                 channels: int = 3, toy_hidden: int = 16, num_classes: int = 0,
                 label_embed_dim: int = 4) -> TrainConfig:
    """A tiny model's config; `num_classes` > 0: class-conditional (label embedding `label_embed_dim` wide)."""
    cfg = TrainConfig()
    cfg.model.arch = arch
    cfg.model.resolution = resolution
    cfg.model.base_channels = base_channels
    cfg.model.latent_dim = 2 if arch == "mlp" else latent_dim
    cfg.model.channels = channels
    cfg.model.toy_hidden = toy_hidden
    cfg.model.num_classes = num_classes
    cfg.model.label_embed_dim = label_embed_dim
    return cfg


def _perturb_batchnorm(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics, as after training, so eval()-mode BN really matters in parity."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            assert m.running_var is not None
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def write_checkpoint(path: Path, cfg: TrainConfig, *, ema: bool = True, step: int = 0, seed: int = 0,
                     critic_only: bool = False, classes: list[str] | None = None) -> Path:
    """A real checkpoint file as tgan-train would write it (generator, optional EMA copy, or critic only).

    A conditional config (model.num_classes > 0) gets `classes` (default "c0", "c1", ...) in the checkpoint."""
    torch.manual_seed(seed)
    generator = build_generator(cfg.model)
    _perturb_batchnorm(generator, seed)
    state: dict[str, Any] = {"config": cfg.to_dict(), "step": step}
    if cfg.model.num_classes:
        state["classes"] = classes if classes is not None else [f"c{i}" for i in range(cfg.model.num_classes)]
    if critic_only:
        state["critic"] = build_critic(cfg.model).state_dict()
    else:
        state["generator"] = generator.state_dict()
        if ema:
            ema_copy = build_generator(cfg.model)
            _perturb_batchnorm(ema_copy, seed + 1)
            state["generator_ema"] = ema_copy.state_dict()
    save_checkpoint(path, state)
    return path

"""Training a StyleGAN2 (model.arch "stylegan2", docs/training.md "StyleGAN2"): its constructor kwargs from the
config keys, the training-time forward of the generator, and fine-tuning from an imported StyleGAN2's
discriminator (path-length regularisation: train/regularisers.py).

The networks are models/stylegan2.py's (the importer's); what only training needs lives here:
- `StyleTraining` wraps the generator for the training steps (Karras et al. 2020, StyleGAN2, and the
  StyleGAN2-ADA code's training loop): every training-mode forward tracks w_avg (w_avg <- lerp(mean w, w_avg,
  w_avg_beta)) and, with probability model.style_mixing per batch, takes the ws from layer `cutoff` on (cutoff
  uniform in [1, num_ws)) from a second latent (style-mixing regularisation, StyleGAN §3.1). Its draws come
  from the run's noise generator for the *global* batch, and w_avg is updated from the global mean of w, so a
  torchrun run computes what one process computes (train/distributed.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tgan_deploy.config import STYLE_ARCHS, ModelConfig, TrainConfig
from tgan_deploy.errors import TganError
from tgan_deploy.models.stylegan2 import StyleGAN2Generator, nvlabs_widths
from tgan_deploy.train.distributed import Context, mean_over_ranks


def style_kwargs(m: ModelConfig) -> dict[str, Any]:
    """model.style of a stylegan2 trained from scratch: the generator's and the discriminator trunk's
    constructor kwargs from the config keys (models/stylegan2.py; NVlabs' layer forms, equalised learning rate
    through unit-scale weights)."""
    channels = nvlabs_widths(m.resolution, m.channel_base, m.channel_max)
    return {
        "generator": {"z_dim": m.latent_dim, "w_dim": m.w_dim, "resolution": m.resolution, "channels": m.channels,
                      "widths": channels, "num_classes": m.num_classes, "mapping_layers": m.mapping_layers,
                      "mapping_lr_multiplier": m.mapping_lr_multiplier},
        "discriminator": {"resolution": m.resolution, "channels": m.channels, "widths": channels,
                          "mbstd_group_size": m.mbstd_group_size},
    }


def configure(cfg: TrainConfig, parent: dict[str, Any] | None) -> None:
    """Fill model.style of a stylegan2 run: a StyleGAN2 parent's architecture (its weights must fit), else
    the config keys' (kept as it is on --resume: config.yaml recorded it)."""
    m = cfg.model
    if m.arch not in STYLE_ARCHS:
        return
    if parent is not None:
        theirs: ModelConfig = parent["config_obj"].model
        if theirs.num_classes != m.num_classes:
            have = f"{theirs.num_classes} classes" if theirs.num_classes else "no classes (unconditional)"
            want = f"{m.num_classes} classes" if m.num_classes else "an unconditional model"
            raise TganError(f"--init-from {parent['path']} has {have}, this run trains {want}: a StyleGAN2 parent "
                            "serves only its own classes (train with or without --conditional to match it)")
        generator = dict(theirs.style["generator"])
        discriminator = dict(theirs.style.get("discriminator") or style_kwargs(m)["discriminator"])
        m.style = {"generator": generator, "discriminator": discriminator}
        m.latent_dim, m.w_dim = int(generator["z_dim"]), int(generator["w_dim"])
    elif not m.style:
        m.style = style_kwargs(m)


def check_batch(cfg: TrainConfig, local_batch: int) -> None:
    """The discriminator's minibatch-std layer splits each process's batch into groups of mbstd_group_size."""
    if cfg.model.arch not in STYLE_ARCHS:
        return
    group = cfg.model.style.get("discriminator", {}).get("mbstd_group_size") or local_batch
    if local_batch % min(group, local_batch):
        raise TganError(f"a batch of {local_batch} per process does not split into the discriminator's minibatch-std "
                        f"groups of {group}: use a multiple of {group} per process (optim.batch_size)")


class StyleTraining(nn.Module):
    """The generator's training-time forward: w_avg tracking and style mixing around mapping + synthesis."""

    def __init__(self, generator: nn.Module, mixing: float, global_batch: int, noise_rng: torch.Generator,
                 ctx: Context) -> None:
        super().__init__()
        if not isinstance(generator, StyleGAN2Generator):
            raise TypeError(f"style training needs a StyleGAN2 generator, got {type(generator).__name__}")
        self.generator = generator
        self.mixing, self.global_batch, self.noise_rng, self.ctx = mixing, global_batch, noise_rng, ctx

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        G = self.generator
        ws = G.mapping(z, labels)
        if self.training:
            self._track_w_avg(ws)
        if self.mixing > 0:
            ws = self._mix(ws, labels)
        return G.synthesis(ws)

    @torch.no_grad()
    def _track_w_avg(self, ws: torch.Tensor) -> None:
        mapping = self.generator.mapping
        mean = mean_over_ranks(ws[:, 0].float().mean(dim=0), self.ctx)
        w_avg = mapping.get_buffer("w_avg")
        w_avg.copy_(mean.lerp(w_avg, float(mapping.w_avg_beta or 0.0)))

    def _mix(self, ws: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        # Every draw is made, mixing or not, for the global batch: the noise generator advances the same way on
        # every rank and in every run.
        rng, device, num_ws = self.noise_rng, ws.device, ws.shape[1]
        mix = bool(torch.rand((), generator=rng, device=device) < self.mixing)
        cutoff = int(torch.randint(1, num_ws, (), generator=rng, device=device))
        z2 = torch.randn(self.global_batch, self.generator.z_dim, generator=rng, device=device)
        if not mix:
            return ws
        z2 = z2[self.ctx.rank::self.ctx.world_size]
        return torch.cat([ws[:, :cutoff], self.generator.mapping(z2, labels)[:, cutoff:]], dim=1)


def critic_state_from_discriminator(d_state: dict[str, torch.Tensor], single_sample: bool) -> dict[str, Any]:
    """An imported StyleGAN2 discriminator's state dict in the critic's names: its trunk -> encoder.*, its
    output layer -> head.* when the critic scores single samples with it (unconditional D: one output);
    the class mapping network (replaced by our projection) and, for pair critics, the output layer are left
    out, so init-from names them fresh."""
    out: dict[str, Any] = {}
    for key, tensor in d_state.items():
        if key.startswith("b4.out."):
            if single_sample:
                out["head." + key.removeprefix("b4.out.")] = tensor
        elif not key.startswith("mapping."):
            out["encoder." + key] = tensor
    return out

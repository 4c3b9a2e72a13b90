"""The critic's scores over the global batch: the one module DistributedDataParallel wraps for the critic.

Single process: `GlobalScores(x_real, x_fake)` is exactly `objectives.scores(objective, critic, ...)`.
Under torchrun the encoder's outputs (and so the single-sample logits, which the head computes from
them) are all-gathered before scoring, so T-objectives pair reals and fakes across the whole global batch
and the baselines' batch means are global means; see distributed.py for why the gradients stay exact.
"""

from __future__ import annotations

import torch
from torch import nn

from tgan_deploy.config import ObjectiveConfig
from tgan_deploy.models import Critic, make_pairs
from tgan_deploy.objectives import Objective, gradient_penalty, scores
from tgan_deploy.train.distributed import Context, gather_cat


class _GatheredEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, ctx: Context) -> None:
        super().__init__()
        self.encoder = encoder
        self.ctx = ctx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gather_cat(self.encoder(x), self.ctx)


class GlobalScores(nn.Module):
    def __init__(self, critic: Critic, objective: Objective, cfg: ObjectiveConfig, ctx: Context,
                 pair_rng: torch.Generator, noise_rng: torch.Generator) -> None:
        super().__init__()
        self.critic = critic  # local scores (gradient penalty); shares every parameter with `global_critic`
        self.global_critic = Critic(_GatheredEncoder(critic.encoder, ctx), critic.head, critic.projection)
        self.objective = objective
        self.cfg = cfg
        self.world_size = ctx.world_size
        self.ctx = ctx
        self.pair_rng = pair_rng
        self.noise_rng = noise_rng

    def forward(self, x_real: torch.Tensor | None, x_fake: torch.Tensor, with_penalty: bool = False,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(a, b) for the objective's loss functions, plus WGAN-GP's penalty on this rank's batch if asked.
        `labels`: the class of real i and fake i (conditional training), so pairs stay within a class."""
        n = x_fake.shape[0] * self.world_size
        global_labels = None if labels is None else gather_cat(labels, self.ctx)
        pairs = make_pairs(self.cfg.pairing, n, n, x_fake.device, self.pair_rng, global_labels) \
            if self.objective.pairwise else "index"
        a, b = scores(self.objective, self.global_critic, x_real, x_fake, pairs, self.cfg.pair_impl, global_labels)
        penalty = None
        if with_penalty:
            assert x_real is not None
            penalty = gradient_penalty(self.critic, x_real, x_fake, generator=self.noise_rng, labels=labels)
        return a, b, penalty

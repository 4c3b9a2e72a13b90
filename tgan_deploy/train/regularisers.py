"""Lazy regularisers as steps (StyleGAN2 §B, "lazy regularization"): a term added to a step's loss every
`interval`-th step, weighted by `interval`, in the same optimiser step (so Adam needs no correction for a separate
regularisation step). Which step it is, is counted by the step's own optimiser (Adam's per-parameter step count):
it is checkpointed, restored on --resume and rolled back with the weights, so a resumed run regularises on the
same steps as an uninterrupted one.

- `R1CriticStep`: R1 on real inputs (objectives.r1_penalty; docs/method.md §7.4), objective.r1_gamma and
  objective.r1_interval; any architecture.
- `PathLengthGeneratorStep`: StyleGAN2's path-length regularisation of a style generator, objective.pl_weight and
  objective.pl_interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from tgan_deploy.config import ObjectiveConfig
from tgan_deploy.models.critic import Critic
from tgan_deploy.objectives import r1_penalty
from tgan_deploy.train import distributed
from tgan_deploy.train.state import TrainerState
from tgan_deploy.train.steps import CriticStep, GeneratorStep
from tgan_deploy.train.style import StyleTraining

PL_DECAY = 0.01  # StyleGAN2's moving-average rate of the path-length target a
PL_BATCH_SHRINK = 2  # StyleGAN2 regularises path lengths on half the batch


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """Steps the optimiser has taken (Adam keeps a count per parameter; frozen ones have none)."""
    return max((int(s["step"]) for s in optimizer.state.values() if "step" in s), default=0)


@dataclasses.dataclass
class R1CriticStep(CriticStep):
    """The critic step + r1_interval * r1_gamma / 2 * R1 on every r1_interval-th critic step. R1 is computed on
    this rank's batch through the local critic (as WGAN-GP's penalty): its gradients join the same backward pass,
    so DDP averages them with the rest."""

    r1_gamma: float = 0.0  # objective.r1_gamma
    r1_interval: int = 16  # objective.r1_interval

    def loss(self, x_real: torch.Tensor, x_fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        loss = super().loss(x_real, x_fake, labels)
        if optimizer_steps(self.optimizer) % self.r1_interval:
            return loss
        # the critic sees augmented reals (and, for pair critics, fakes), as in its loss
        seen_real, seen_fake = self.augment(x_real), self.augment(x_fake)
        assert isinstance(self.model, Critic) and seen_real is not None and seen_fake is not None
        with self.autocast:
            r1 = r1_penalty(self.model, seen_real, seen_fake, labels)
        return loss + self.r1_interval * self.r1_gamma / 2 * r1


@dataclasses.dataclass
class PathLengthGeneratorStep(GeneratorStep):
    """The generator step + pl_interval * pl_weight * mean (|J_w^T y| - a)^2 on every pl_interval-th generator step
    (StyleGAN2 §3.2): lengths of J_w^T y, y ~ N(0, I) / sqrt(H W) image-shaped, on half a batch of fresh latents;
    a <- a + PL_DECAY (mean length - a) (the global mean under torchrun), kept in the trainer state."""

    settings: ObjectiveConfig
    style: StyleTraining
    trainer: Callable[[], TrainerState]  # the run's current trainer state (a resume or rollback replaces it)

    def loss(self, x_real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        loss = super().loss(x_real, labels)
        if optimizer_steps(self.optimizer) % self.settings.pl_interval:
            return loss
        state = self.trainer()
        with self.autocast:
            penalty, state.pl_mean = self._penalty(labels, state.pl_mean)
        return loss + self.settings.pl_interval * self.settings.pl_weight * penalty

    def _penalty(self, labels: torch.Tensor | None, pl_mean: float) -> tuple[torch.Tensor, float]:
        G, z = self.style.generator, self.latents()
        n = max(1, z.shape[0] // PL_BATCH_SHRINK)
        ws = G.mapping(z[:n], None if labels is None else labels[:n])
        images = G.synthesis(ws)
        noise = torch.randn(images.shape, generator=self.latents.generator, device=images.device)
        noise = noise / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(dim=2).mean(dim=1).sqrt()
        mean = distributed.mean_over_ranks(lengths.detach().mean(), self.style.ctx)
        target = pl_mean + PL_DECAY * (float(mean) - pl_mean)
        return (lengths - target).square().mean(), target

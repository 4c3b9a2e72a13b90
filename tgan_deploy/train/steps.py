"""One critic step and one generator step (../shared/docs/tgan-method.md §2, the reference bojone/T-GANs).

Each step is a small callable with one signature, `step(x_real, labels) -> StepResult` (the style of EDM's
training/loss.py, Karras et al. arXiv:2206.00364): it draws its own fakes, computes its loss, steps its optimiser
and returns the loss and gradient norm as floats. Everything it needs is bound when it is built (train/loop.py's
setup), so the loop reads top to bottom. A regulariser is one more term of a step's loss: override
`CriticStep.loss` (R1, lazy regularisation) rather than adding a branch here.

Every optimiser step is guarded: a NaN/Inf loss or gradient norm raises `Diverged` before the weights change
(the divergence guard; run.on_divergence decides what happens next).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from tgan_deploy.config import TrainConfig
from tgan_deploy.objectives import Objective
from tgan_deploy.train import distributed
from tgan_deploy.train.augment import Augmenter, overfitting_signal


class Diverged(Exception):
    """Internal: a guarded step saw a non-finite value."""


@dataclasses.dataclass(frozen=True)
class StepResult:
    loss: float
    grad_norm: float


class Latents:
    """z for this rank's rows of the global batch, from the trainer's noise generator."""

    def __init__(self, cfg: TrainConfig, ctx: distributed.Context, device: torch.device,
                 generator: torch.Generator) -> None:
        self.batch, self.dim = cfg.optim.batch_size, cfg.model.latent_dim
        self.device, self.generator = device, generator
        # Rank r takes rows r, r + W, r + 2W, ... of the global batch: the same interleaving as the data
        # loader's DistributedSampler shards, so after the all-gather real i and fake i are the pair a single
        # process would form (index pairing matches a single process, not just in distribution).
        self.rows = slice(ctx.rank, None, ctx.world_size)

    def __call__(self) -> torch.Tensor:
        # The global batch's z on every rank, then this rank's rows: a torchrun run draws the very latents a
        # single process with the same global batch would.
        z = torch.randn(self.batch, self.dim, generator=self.generator, device=self.device)
        return z[self.rows]


@dataclasses.dataclass
class Step:
    """What both steps hold; `descend` takes one guarded optimiser step on a loss."""

    G: nn.Module  # draws the fakes (DDP-wrapped under torchrun when the generator is the one stepped)
    model: nn.Module  # the network whose parameters the step updates (and whose gradients are guarded)
    scores: nn.Module  # GlobalScores: (a, b, penalty) over the global batch
    objective: Objective
    augment: Augmenter
    optimizer: torch.optim.Optimizer
    latents: Latents
    autocast: torch.autocast

    def descend(self, what: str, loss: torch.Tensor) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        result = guard(what, loss, self.model)
        self.optimizer.step()
        return result


@dataclasses.dataclass
class CriticStep(Step):
    """E and D minimise the objective's critic loss on a real batch and fakes drawn from G without gradients
    (reals and fakes encoded in separate calls; WGAN-GP's penalty on this rank's batch if the objective has one).
    `scores` is DDP-wrapped under torchrun."""

    gp_weight: float = 0.0  # objective.gp_weight

    def __call__(self, x_real: torch.Tensor, labels: torch.Tensor | None) -> StepResult:
        with torch.no_grad(), self.autocast:
            x_fake = self.G(self.latents(), labels)
        return self.descend("critic", self.loss(x_real, x_fake, labels))

    def loss(self, x_real: torch.Tensor, x_fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The critic's loss (float32) with its gradients: the objective's, plus any regulariser's term."""
        with self.autocast:
            a, b, penalty = self.scores(self.augment(x_real), self.augment(x_fake), self.objective.gradient_penalty,
                                        labels)
        if self.augment.policy == "ada":
            self.augment.observe(float(overfitting_signal(a.detach(), b.detach(), self.objective.absolute_critic)))
        loss = self.objective.critic_loss(a.float(), b.float())
        if penalty is not None:
            loss = loss + self.gp_weight * penalty.float()
        return loss


@dataclasses.dataclass
class GeneratorStep(Step):
    """G minimises the objective's generator loss on fresh fakes (and a real batch, for the T-objectives that
    pair them). The caller freezes E and D (requires_grad False, never stepped); they stay in train mode, so
    E's BatchNorm uses batch statistics. `scores` is not DDP-wrapped here: the critic is frozen."""

    def __call__(self, x_real: torch.Tensor, labels: torch.Tensor | None) -> StepResult:
        return self.descend("generator", self.loss(x_real, labels))

    def loss(self, x_real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        with self.autocast:
            x_fake = self.G(self.latents(), labels)
            a, b, _ = self.scores(self.augment(x_real) if self.objective.generator_uses_real else None,
                                  self.augment(x_fake), labels=labels)
        return self.objective.generator_loss(a.float(), b.float())


def guard(what: str, loss: torch.Tensor, model: nn.Module) -> StepResult:
    """(loss, gradient norm) as floats; raises Diverged before the optimiser steps if either is NaN/Inf."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=loss.device)
    loss_value, norm_value = torch.stack([loss.detach().float(), norm.float()]).tolist()
    if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
        raise Diverged(f"{what} loss {loss_value} / gradient norm {norm_value}")
    return StepResult(loss_value, norm_value)

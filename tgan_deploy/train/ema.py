"""Exponential moving average of the generator's weights (used for samples and export by default).

ema = decay * ema + (1 - decay) * weights after every iteration; BatchNorm's running statistics and
other buffers are copied, not averaged, so the EMA generator in eval() mode normalises with the live
generator's statistics (the usual practice, e.g. Karras et al. arXiv:1710.10196).
Warm-up: iteration t uses min(decay, (1 + t) / (10 + t)) (TensorFlow's ExponentialMovingAverage with
num_updates), so a short run's EMA is not dominated by the random initial weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, iteration: int) -> float:
        return min(self.decay, (1.0 + iteration) / (10.0 + iteration))

    @torch.no_grad()
    def update(self, model: nn.Module, iteration: int) -> None:
        """Fold in `model`'s weights after iteration `iteration` (0-based)."""
        ema_params: list[torch.Tensor] = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - self.decay_at(iteration))
        for ema_buf, buf in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buf.copy_(buf)

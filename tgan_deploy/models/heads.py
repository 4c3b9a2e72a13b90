"""The pair head D of T-GAN's critic T(x_r, x_f) = D(E(x_r) - E(x_f)) (docs/method.md §4).

D(u) = w2 . LeakyReLU(W1 u + b1) (+ b2; the reference has none). Because W1 is linear,
W1 (e_r - e_f) = A_i - C_j with A = E(x_r) W1^T and C = E(x_f) W1^T: the head projects each batch once
and `tgan_deploy.ops.pair_scores` scores the pairs without materialising a [pairs, H] tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from tgan_deploy.models.layers import init_weights
from tgan_deploy.ops import pair_scores


class PairHead(nn.Module):
    def __init__(self, feature_dim: int, hidden: int = 512, negative_slope: float = 0.3,
                 output_bias: bool = False, layer_defaults: str = "keras") -> None:
        super().__init__()
        self.fc1 = nn.Linear(feature_dim, hidden)
        self.fc2 = nn.Linear(hidden, 1, bias=output_bias)
        self.negative_slope = negative_slope
        init_weights(self, layer_defaults)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """D(u) for feature vectors u [B, d] -> scores [B]."""
        h = nn.functional.leaky_relu(self.fc1(u), self.negative_slope)
        return self.fc2(h).squeeze(1)

    def pair_scores(self, e_real: torch.Tensor, e_fake: torch.Tensor, pairs: str | torch.Tensor = "index",
                    impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """(s+, s-) = (D(e_r - e_f), D(e_f - e_r)) for each pair; see `ops.pair_scores`."""
        w1 = self.fc1.weight  # read once: with spectral norm this computes W1 / sigma(W1) once
        return pair_scores(
            e_real @ w1.t(), e_fake @ w1.t(), self.fc1.bias, self.fc2.weight.reshape(-1),
            self.fc2.bias.reshape(()) if self.fc2.bias is not None else None,
            pairs=pairs, negative_slope=self.negative_slope, impl=impl,
        )

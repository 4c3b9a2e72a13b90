"""The critic: a shared encoder E and a head D.

Baselines score one sample at a time, C(x) = D(E(x)). T-objectives score pairs,
T(x_r, x_f) = D(E(x_r) - E(x_f)) (../shared/docs/tgan-method.md §1-§3). Reals and fakes are
encoded in separate calls so that BatchNorm statistics stay per-batch, as in the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from tgan_deploy.config import parse_pairing
from tgan_deploy.models.heads import PairHead


def make_pairs(spec: str, n_real: int, n_fake: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> str | torch.Tensor:
    """Turn a pairing spec into what `ops.pair_scores` takes.

    "index" and "all" pass through; "perm:K" (reference lab variant `t_sgan_pair_aug.py`) is index
    pairing plus K random permutations of the fakes: an int64 [(K+1)*B, 2] tensor of (real, fake).
    """
    kind, k = parse_pairing(spec)
    if kind != "perm":
        return kind
    if n_real != n_fake:
        raise ValueError(f"perm pairing needs equal batches, got {n_real} reals and {n_fake} fakes")
    real_idx = torch.arange(n_real).repeat(k + 1)
    fake_idx = torch.cat([torch.arange(n_fake)] + [torch.randperm(n_fake, generator=generator)
                                                   for _ in range(k)])
    return torch.stack([real_idx, fake_idx], dim=1).to(device)


class Critic(nn.Module):
    def __init__(self, encoder: nn.Module, head: PairHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Single-sample score C(x) = D(E(x)) [B], for the baselines."""
        return self.head(self.encoder(x))

    def pair_scores(self, x_real: torch.Tensor, x_fake: torch.Tensor, pairs: str | torch.Tensor = "index",
                    impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """(s+, s-) per pair, s+ = D(E(x_r) - E(x_f)), s- = D(E(x_f) - E(x_r))."""
        e_real = self.encoder(x_real)
        e_fake = self.encoder(x_fake)  # a separate call: per-batch BatchNorm statistics
        return self.head.pair_scores(e_real, e_fake, pairs, impl)

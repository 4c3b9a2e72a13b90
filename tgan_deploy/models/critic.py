"""The critic: a shared encoder E and a head D.

Baselines score one sample at a time, C(x) = D(E(x)). T-objectives score pairs,
T(x_r, x_f) = D(E(x_r) - E(x_f)) (docs/method.md §1-§3). Reals and fakes are
encoded in separate calls so that BatchNorm statistics stay per-batch, as in the reference.

Class-conditional critics add the projection term of Miyato & Koyama (arXiv:1802.05637, "cGANs with
projection discriminator"): C(x, y) = D(E(x)) + <v(y), E(x)> for the baselines and, on the pair feature
Δ = E(x_r) - E(x_f) of a same-class pair, s+ = D(Δ) + <v(y), Δ>, s- = D(-Δ) - <v(y), Δ> (the term is odd
in Δ, so the swap symmetry of the T-objectives is kept). Because <v(y), Δ> = <v(y), E(x_r)> - <v(y), E(x_f)>,
it is two per-sample dot products gathered per pair: the fused pair op is untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from tgan_deploy.config import parse_pairing
from tgan_deploy.models.heads import PairHead


def make_pairs(spec: str, n_real: int, n_fake: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> str | torch.Tensor:
    """Turn a pairing spec into what `ops.pair_scores` takes.

    "index" and "all" pass through; "perm:K" (reference lab variant `t_sgan_pair_aug.py`) is index
    pairing plus K random permutations of the fakes: an int64 [(K+1)*B, 2] tensor of (real, fake).
    With `labels` (conditional training: real i and fake i share labels[i]) every pair stays inside a class:
    "all" becomes the list of same-class pairs and perm:K permutes the fakes within each class.
    """
    kind, k = parse_pairing(spec)
    if kind == "index":
        return kind
    if kind == "all":
        return kind if labels is None else same_class_pairs(labels, labels).to(device)
    if n_real != n_fake:
        raise ValueError(f"perm pairing needs equal batches, got {n_real} reals and {n_fake} fakes")
    real_idx = torch.arange(n_real).repeat(k + 1)
    shuffles = [_permutation(n_fake, generator, None if labels is None else labels.cpu()) for _ in range(k)]
    fake_idx = torch.cat([torch.arange(n_fake), *shuffles])
    return torch.stack([real_idx, fake_idx], dim=1).to(device)


def same_class_pairs(labels_real: torch.Tensor, labels_fake: torch.Tensor) -> torch.Tensor:
    """int64 [P, 2] (real, fake) of every pair with equal labels, in the row-major order of "all" pairing."""
    return (labels_real[:, None] == labels_fake[None, :]).nonzero()


def _permutation(n: int, generator: torch.Generator | None, labels: torch.Tensor | None) -> torch.Tensor:
    """perm[i]: the fake paired with real i; a random permutation, within labels[i]'s class when given."""
    if labels is None:
        return torch.randperm(n, generator=generator)
    # Sorting by label + a random fraction orders the members of each class randomly; sorting by label
    # alone (stably) orders them by index. Position p of both orders belongs to the same class.
    shuffled = torch.argsort(labels.double() + torch.rand(n, generator=generator, dtype=torch.float64))
    by_class = torch.argsort(labels, stable=True)
    perm = torch.empty(n, dtype=torch.long)
    perm[by_class] = shuffled
    return perm


class Critic(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module, projection: nn.Embedding | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head  # the PairHead D; or any features -> score layer that only scores single samples
        self.projection = projection  # v(y) of the projection term; None: unconditional

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Single-sample score C(x) = D(E(x)) [B] (+ <v(y), E(x)> if conditional), for the baselines."""
        e = self.encoder(x)
        score = self.head(e).reshape(-1)
        if self.projection is None:
            return score
        return score + self.projected(e, labels)

    def pair_scores(self, x_real: torch.Tensor, x_fake: torch.Tensor, pairs: str | torch.Tensor = "index",
                    impl: str = "auto", labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s+, s-) per pair, s+ = D(E(x_r) - E(x_f)), s- = D(E(x_f) - E(x_r)) (+/- <v(y), Δ> if conditional).

        Conditional: `labels` [B] are the labels of reals and fakes alike (fakes drawn on the reals' labels),
        and `pairs` must pair within a class (`make_pairs(..., labels=labels)`).
        """
        if not isinstance(self.head, PairHead):
            raise ValueError("this critic was built for single-sample objectives: it has no pair head")
        e_real = self.encoder(x_real)
        e_fake = self.encoder(x_fake)  # a separate call: per-batch BatchNorm statistics
        s_pos, s_neg = self.head.pair_scores(e_real, e_fake, pairs, impl)
        if self.projection is None:
            return s_pos, s_neg
        if isinstance(pairs, str) and pairs == "all":
            raise ValueError("a conditional critic scores same-class pairs only: pass make_pairs('all', labels=...)")
        # Real i and fake i share labels[i], so one gather v(y) serves both sides (and one read of the
        # weight: with spectral norm, one normalisation per call rather than one per side).
        v = self._class_vectors(labels)
        p_real, p_fake = (v * e_real.to(v.dtype)).sum(dim=1), (v * e_fake.to(v.dtype)).sum(dim=1)
        term = p_real - p_fake if isinstance(pairs, str) else p_real[pairs[:, 0]] - p_fake[pairs[:, 1]]
        return s_pos + term, s_neg - term

    def projected(self, e: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """<v(y_i), e_i> [B]."""
        v = self._class_vectors(labels)
        return (v * e.to(v.dtype)).sum(dim=1)

    def _class_vectors(self, labels: torch.Tensor | None) -> torch.Tensor:
        """v(y_i) [B, feature_dim]: the projection table's rows for the batch's labels."""
        assert self.projection is not None
        if labels is None:
            raise ValueError(f"this critic is class-conditional ({self.projection.num_embeddings} classes): "
                             "pass the batch's labels")
        return self.projection.weight[labels]

"""Public pair-score op: (s+, s-) for pairs of real and fake encodings, T-GAN's critic head.

    A = E(x_r) W1^T  [B_r, H],  C = E(x_f) W1^T  [B_f, H],  b1 [H],  w2 [H],  b2 scalar or None
    s+_p = w2 . LeakyReLU(A_i - C_j + b1) + b2,   s-_p = w2 . LeakyReLU(C_j - A_i + b1) + b2

`pairs`: "index" (i with i; B_r == B_f), "all" (every (i, j), pair p = i * B_f + j), or an int64
tensor [P, 2] of (real, fake) indices. ../shared/docs/tgan-method.md §3-§4.
`impl`: "ref" is plain PyTorch (pairing_ref.py), the oracle for the fused kernels.
"""

from __future__ import annotations

import torch

from tgan_deploy.ops.pairing_ref import pair_scores_ref

IMPLS = ("auto", "ref")


def _check(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor | None,
           pairs: str | torch.Tensor) -> None:
    if a.dim() != 2 or c.dim() != 2 or a.shape[1] != c.shape[1]:
        raise ValueError(f"A and C must be [B, H] with the same H, got {tuple(a.shape)} and {tuple(c.shape)}")
    hidden = a.shape[1]
    if b1.shape != (hidden,) or w2.shape != (hidden,):
        raise ValueError(f"b1 and w2 must be [{hidden}], got {tuple(b1.shape)} and {tuple(w2.shape)}")
    if a.shape[0] == 0 or c.shape[0] == 0:
        raise ValueError(f"no pairs to score: A has {a.shape[0]} rows and C has {c.shape[0]}")
    if b2 is not None and b2.numel() != 1:
        raise ValueError(f"b2 must be a scalar, got shape {tuple(b2.shape)}")
    if isinstance(pairs, str):
        if pairs not in ("index", "all"):
            raise ValueError(f"pairs must be 'index', 'all' or an int64 [P, 2] tensor, got {pairs!r}")
        if pairs == "index" and a.shape[0] != c.shape[0]:
            raise ValueError(f"index pairing needs B_r == B_f, got {a.shape[0]} and {c.shape[0]}")
    else:
        if pairs.dtype != torch.int64 or pairs.dim() != 2 or pairs.shape[1] != 2:
            raise ValueError(f"a pair list must be int64 [P, 2], got {pairs.dtype} {tuple(pairs.shape)}")
        if pairs.shape[0] == 0:
            raise ValueError("the pair list is empty: pass at least one (real, fake) pair")
        if (pairs.min() < 0 or pairs[:, 0].max() >= a.shape[0]
                              or pairs[:, 1].max() >= c.shape[0]):
            raise ValueError("a pair list holds an index out of range of A or C")


def pair_scores(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                b2: torch.Tensor | None = None, *, pairs: str | torch.Tensor = "index",
                negative_slope: float = 0.3, impl: str = "ref") -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (s_pos, s_neg), each [P]; differentiable in A, C, b1, w2 and b2."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check(a, c, b1, w2, b2, pairs)
    return pair_scores_ref(a, c, b1, w2, b2, pairs, negative_slope)

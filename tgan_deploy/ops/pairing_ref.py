"""Reference pair scores in plain PyTorch: the oracle the fused kernels must match.

For a pair p = (i, j): delta = A_i - C_j,  h+ = delta + b1,  h- = -delta + b1,
s+_p = w2 . phi(h+) + b2,  s-_p = w2 . phi(h-) + b2   (docs/method.md §4.2).

All-pairs and explicit pair lists are processed in blocks of pairs, each under activation
checkpointing, so neither forward nor backward ever holds more than one block's [pairs, H] tensor.
"""

from __future__ import annotations

import torch
from torch.nn.functional import leaky_relu
from torch.utils.checkpoint import checkpoint

# Elements of one block's [pairs, H] intermediate (float32: 64 MiB per live tensor).
BLOCK_ELEMENTS = 1 << 24


def _scores(delta: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor | None,
            negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    s_pos = leaky_relu(delta + b1, negative_slope) @ w2
    s_neg = leaky_relu(b1 - delta, negative_slope) @ w2
    if b2 is not None:
        s_pos, s_neg = s_pos + b2, s_neg + b2
    return s_pos, s_neg


def _all_block(a_rows: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
               b2: torch.Tensor | None, negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    delta = (a_rows[:, None, :] - c[None, :, :]).flatten(0, 1)  # pair (i, j) at row i * B_f + j
    return _scores(delta, b1, w2, b2, negative_slope)


def _list_block(a: torch.Tensor, c: torch.Tensor, pairs: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                b2: torch.Tensor | None, negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    return _scores(a[pairs[:, 0]] - c[pairs[:, 1]], b1, w2, b2, negative_slope)


def pair_scores_ref(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                    b2: torch.Tensor | None, pairs: str | torch.Tensor,
                    negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = a.shape[1]
    if isinstance(pairs, str) and pairs == "index":
        return _scores(a - c, b1, w2, b2, negative_slope)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (a, c, b1, w2, b2))

    def run(fn, *args):  # type: ignore[no-untyped-def]
        if needs_grad:  # recompute the block in backward instead of keeping it
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    outs: list[tuple[torch.Tensor, torch.Tensor]] = []
    if isinstance(pairs, str):  # "all"
        rows = max(1, BLOCK_ELEMENTS // max(1, c.shape[0] * hidden))
        for start in range(0, a.shape[0], rows):
            outs.append(run(_all_block, a[start:start + rows], c, b1, w2, b2, negative_slope))
    else:
        rows = max(1, BLOCK_ELEMENTS // max(1, hidden))
        for start in range(0, pairs.shape[0], rows):
            outs.append(run(_list_block, a, c, pairs[start:start + rows], b1, w2, b2, negative_slope))
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

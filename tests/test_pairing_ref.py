"""pair_scores(impl="ref") against a naive, fully materialised computation written here (§3-§4)."""

from __future__ import annotations

import pytest
import torch

from tgan_deploy.ops import pair_scores, pairing_ref

SLOPE = 0.3


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, SLOPE * x)


def naive(a, c, b1, w2, b2, pair_list):  # type: ignore[no-untyped-def]
    """One pair at a time: s+ = w2 . phi(A_i - C_j + b1) + b2, s- = w2 . phi(C_j - A_i + b1) + b2."""
    s_pos, s_neg = [], []
    for i, j in pair_list:
        s_pos.append((w2 * lrelu(a[i] - c[j] + b1)).sum() + (0 if b2 is None else b2))
        s_neg.append((w2 * lrelu(c[j] - a[i] + b1)).sum() + (0 if b2 is None else b2))
    return torch.stack(s_pos), torch.stack(s_neg)


def explicit_pairs(pairs: str | torch.Tensor, b_r: int, b_f: int) -> list[tuple[int, int]]:
    if isinstance(pairs, torch.Tensor):
        return [(int(i), int(j)) for i, j in pairs]
    if pairs == "index":
        return [(i, i) for i in range(b_r)]
    return [(i, j) for i in range(b_r) for j in range(b_f)]  # "all": pair p = i * B_f + j, row-major


def make_inputs(b_r: int, b_f: int, hidden: int, with_b2: bool, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    def t(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_(True)
    return t(b_r, hidden), t(b_f, hidden), t(hidden), t(hidden), (t() if with_b2 else None)


CASES = [  # (B_r, B_f, H, pairs)
    (5, 5, 7, "index"),
    (1, 1, 1, "index"),  # H = 1, P = 1
    (4, 6, 5, "all"),  # B_r != B_f
    (3, 1, 1, "all"),
    (1, 1, 3, "all"),  # P = 1
    (4, 6, 5, torch.tensor([[0, 5], [3, 0], [3, 0], [1, 2], [2, 4]])),  # repeats, B_r != B_f
    (2, 3, 4, torch.tensor([[1, 2]])),  # P = 1
]


@pytest.mark.parametrize("b_r,b_f,hidden,pairs", CASES)
@pytest.mark.parametrize("with_b2", [False, True])
def test_values_and_gradients_match_naive(b_r: int, b_f: int, hidden: int, pairs: str | torch.Tensor,
                                          with_b2: bool) -> None:
    inputs = make_inputs(b_r, b_f, hidden, with_b2)
    leaves = [t for t in inputs if t is not None]
    got = pair_scores(*inputs, pairs=pairs, negative_slope=SLOPE, impl="ref")
    want = naive(*inputs, explicit_pairs(pairs, b_r, b_f))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # Gradients under an arbitrary upstream gradient (g+, g-) per pair.
    g_pos, g_neg = torch.randn_like(want[0]), torch.randn_like(want[1])
    grads_got = torch.autograd.grad((got[0] * g_pos + got[1] * g_neg).sum(), leaves)
    grads_want = torch.autograd.grad((want[0] * g_pos + want[1] * g_neg).sum(), leaves)
    torch.testing.assert_close(grads_got, grads_want, rtol=1e-12, atol=1e-12)


def test_gradients_match_the_method_notes_backward() -> None:
    """§4's closed-form backward, for index pairing: dA, dC, db1, dw2, db2 from g+, g-."""
    a, c, b1, w2, b2 = make_inputs(6, 6, 5, with_b2=True, seed=3)
    s_pos, s_neg = pair_scores(a, c, b1, w2, b2, pairs="index", negative_slope=SLOPE, impl="ref")
    g_pos, g_neg = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    got = torch.autograd.grad((s_pos * g_pos + s_neg * g_neg).sum(), [a, c, b1, w2, b2])
    with torch.no_grad():
        h_pos, h_neg = a - c + b1, c - a + b1
        u_pos = w2 * torch.where(h_pos > 0, 1.0, torch.full_like(h_pos, SLOPE))  # w2 * phi'(h+)
        u_neg = w2 * torch.where(h_neg > 0, 1.0, torch.full_like(h_neg, SLOPE))
        gp, gn = g_pos[:, None], g_neg[:, None]
        want = (gp * u_pos - gn * u_neg, gn * u_neg - gp * u_pos, (gp * u_pos + gn * u_neg).sum(0),
                (gp * lrelu(h_pos) + gn * lrelu(h_neg)).sum(0), (g_pos + g_neg).sum())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pairs", ["index", "all", "list"])
@pytest.mark.parametrize("with_b2", [False, True])
def test_gradcheck(pairs: str, with_b2: bool) -> None:
    b_r, b_f = (3, 3) if pairs == "index" else (3, 2)
    inputs = make_inputs(b_r, b_f, 4, with_b2, seed=1)
    spec: str | torch.Tensor = torch.tensor([[0, 1], [2, 0], [2, 1], [0, 1]]) if pairs == "list" else pairs

    def fn(*args):  # type: ignore[no-untyped-def]
        a, c, b1, w2 = args[:4]
        return pair_scores(a, c, b1, w2, args[4] if with_b2 else None, pairs=spec, negative_slope=SLOPE,
                           impl="ref")

    assert torch.autograd.gradcheck(fn, tuple(t for t in inputs if t is not None))


class CountingCheckpoint:
    """Wraps torch.utils.checkpoint.checkpoint (still the real thing) to count the blocks it runs."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = pairing_ref.checkpoint

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("pairs", ["all", "list"])
def test_blocked_checkpointed_path_matches_one_block(pairs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b_r, b_f, hidden = 7, 5, 4
    inputs = make_inputs(b_r, b_f, hidden, with_b2=True, seed=2)
    leaves = [t for t in inputs if t is not None]
    spec: str | torch.Tensor = (torch.randint(0, 5, (23, 2), generator=torch.Generator().manual_seed(0))
                                if pairs == "list" else pairs)
    n_pairs = 23 if pairs == "list" else b_r * b_f

    def run() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
        out = pair_scores(*inputs, pairs=spec, negative_slope=SLOPE, impl="ref")
        up = torch.linspace(-1, 1, n_pairs, dtype=torch.float64)
        return out, torch.autograd.grad((out[0] * up - out[1] * up.flip(0)).sum(), leaves)

    one_block, one_block_grads = run()  # default BLOCK_ELEMENTS: a single block
    counter = CountingCheckpoint()
    monkeypatch.setattr(pairing_ref, "checkpoint", counter)
    monkeypatch.setattr(pairing_ref, "BLOCK_ELEMENTS", 2 * hidden * (b_f if pairs == "all" else 1))
    blocked, blocked_grads = run()
    expected_blocks = -(-b_r // 2) if pairs == "all" else -(-23 // 2)  # 2 real rows / 2 pairs per block
    assert counter.calls == expected_blocks
    torch.testing.assert_close(blocked, one_block, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(blocked_grads, one_block_grads, rtol=1e-12, atol=1e-12)
    # Without gradients, blocks run plainly (no checkpoint) and give the same scores.
    with torch.no_grad():
        plain = pair_scores(*inputs, pairs=spec, negative_slope=SLOPE, impl="ref")
    assert counter.calls == expected_blocks
    torch.testing.assert_close(plain, one_block, rtol=1e-14, atol=1e-14)


def test_float32_matches_float64() -> None:
    inputs = make_inputs(8, 8, 16, with_b2=False, seed=4)
    want = pair_scores(*inputs, pairs="all", negative_slope=SLOPE, impl="ref")
    got = pair_scores(*(t.float() for t in inputs if t is not None), pairs="all", negative_slope=SLOPE, impl="ref")
    assert got[0].dtype == torch.float32
    torch.testing.assert_close((got[0].double(), got[1].double()), want, rtol=1e-5, atol=1e-5)


def _args(b_r: int = 3, b_f: int = 3, hidden: int = 4):  # type: ignore[no-untyped-def]
    return torch.randn(b_r, hidden), torch.randn(b_f, hidden), torch.randn(hidden), torch.randn(hidden)


@pytest.mark.parametrize("call,message", [
    (lambda: pair_scores(torch.randn(3, 4), torch.randn(3, 5), torch.randn(4), torch.randn(4)), "same H"),
    (lambda: pair_scores(torch.randn(3), torch.randn(3), torch.randn(1), torch.randn(1)), r"\[B, H\]"),
    (lambda: pair_scores(*_args()[:2], torch.randn(5), torch.randn(4)), "b1 and w2 must be"),
    (lambda: pair_scores(*_args()[:3], torch.randn(4, 1)), "b1 and w2 must be"),
    (lambda: pair_scores(*_args(), torch.randn(2)), "b2 must be a scalar"),
    (lambda: pair_scores(*_args(3, 4)), "index pairing needs B_r == B_f"),
    (lambda: pair_scores(*_args(), pairs="pairs"), "pairs must be 'index', 'all'"),
    (lambda: pair_scores(*_args(), pairs=torch.tensor([[0, 1]], dtype=torch.int32)), "int64"),
    (lambda: pair_scores(*_args(), pairs=torch.tensor([0, 1])), r"\[P, 2\]"),
    (lambda: pair_scores(*_args(), pairs=torch.tensor([[0, 1, 2]])), r"\[P, 2\]"),
    (lambda: pair_scores(*_args(), pairs=torch.zeros(0, 2, dtype=torch.int64)), "pair list is empty"),
    (lambda: pair_scores(*_args(3, 5), pairs=torch.tensor([[3, 0]])), "out of range"),
    (lambda: pair_scores(*_args(3, 5), pairs=torch.tensor([[2, 5]])), "out of range"),
    (lambda: pair_scores(*_args(3, 5), pairs=torch.tensor([[0, -1]])), "out of range"),
    (lambda: pair_scores(*_args(0, 0)), "no pairs to score"),
    (lambda: pair_scores(*_args(), impl="fast"), "impl must be one of"),
])
def test_input_validation(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


def test_in_range_edges_are_accepted() -> None:
    a, c, b1, w2 = _args(3, 5)
    s_pos, _ = pair_scores(a, c, b1, w2, pairs=torch.tensor([[2, 4], [0, 0]]))
    assert s_pos.shape == (2,)


@pytest.mark.gpu
@pytest.mark.parametrize("pairs", ["index", "all"])
def test_ref_on_cuda_matches_cpu(pairs: str) -> None:
    inputs = make_inputs(16, 16, 32, with_b2=True, seed=5)
    leaves = [t for t in inputs if t is not None]
    cpu = pair_scores(*inputs, pairs=pairs, negative_slope=SLOPE, impl="ref")
    cpu_grads = torch.autograd.grad(sum(s.sum() for s in cpu), leaves)
    cuda_leaves = [t.detach().cuda().requires_grad_(True) for t in leaves]
    gpu = pair_scores(*cuda_leaves, pairs=pairs, negative_slope=SLOPE, impl="ref")
    gpu_grads = torch.autograd.grad(sum(s.sum() for s in gpu), cuda_leaves)
    torch.testing.assert_close(tuple(s.cpu() for s in gpu), cpu, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(tuple(g.cpu() for g in gpu_grads), cpu_grads, rtol=1e-10, atol=1e-10)

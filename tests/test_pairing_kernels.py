"""The fused pair-score kernels against the PyTorch reference: values, gradients, gradcheck, dispatch.

CPU kernel tests run everywhere (the extension builds on first use, ~1 min once, then loads from the cache).
CUDA tests are marked gpu and skip without a CUDA device.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from _subprocess import repo_env

from tgan_deploy.models import build_critic
from tgan_deploy.ops import pair_scores
from tgan_deploy.ops.pairing import choose_impl

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

# (B_r, B_f, H): odd sizes, H not a multiple of any vector width or tile, single rows, B_r != B_f.
SHAPES = [(1, 1, 1), (5, 3, 37), (7, 7, 1), (3, 11, 129), (13, 13, 64), (66, 65, 70)]
TOL = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-4, 1e-5),
       torch.bfloat16: (3e-2, 3e-2), torch.float16: (1e-2, 1e-2)}


def _inputs(br: int, bf: int, hidden: int, dtype: torch.dtype, device: str, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    make = [torch.randn(br, hidden, generator=g), torch.randn(bf, hidden, generator=g),
            torch.randn(hidden, generator=g), torch.randn(hidden, generator=g) / hidden ** 0.5,
            torch.randn((), generator=g)]
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in make]


def _pairs(kind: str, br: int, bf: int, device: str, seed: int) -> str | torch.Tensor:
    if kind != "list":
        return kind
    g = torch.Generator().manual_seed(seed)
    n = 1 if seed % 2 else 3 * max(br, bf) + 1  # P = 1 and lists with repeated rows
    return torch.stack([torch.randint(0, br, (n,), generator=g), torch.randint(0, bf, (n,), generator=g)], 1).to(device)


def _scores_and_grads(impl: str, inputs: list[torch.Tensor], pairs: str | torch.Tensor,
                      slope: float) -> list[torch.Tensor]:
    a, c, b1, w2, b2 = inputs
    s_pos, s_neg = pair_scores(a, c, b1, w2, b2, pairs=pairs, negative_slope=slope, impl=impl)
    g = torch.Generator().manual_seed(123)  # the same upstream gradients for both implementations
    g_pos = torch.randn(s_pos.shape, generator=g).to(s_pos)
    g_neg = torch.randn(s_neg.shape, generator=g).to(s_neg)
    grads = torch.autograd.grad((s_pos * g_pos).sum() + (s_neg * g_neg).sum(), inputs)
    return [s_pos, s_neg, *grads]


def _compare(impl: str, device: str, dtype: torch.dtype, kind: str, shape: tuple[int, int, int], seed: int) -> None:
    br, bf, hidden = shape
    if kind == "index":
        bf = br
    pairs = _pairs(kind, br, bf, device, seed)
    inputs = _inputs(br, bf, hidden, dtype, device, seed)
    slope = 0.3 if seed % 3 else 0.1
    got = _scores_and_grads(impl, inputs, pairs, slope)
    # The oracle: the reference on the CPU from the same values, in the kernel's accumulation dtype, so that
    # h = A - C + b1 is rounded identically and no pair lands on the other side of LeakyReLU's kink.
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    ref_inputs = [t.detach().to(device="cpu", dtype=acc).requires_grad_() for t in inputs]
    ref_pairs = pairs if isinstance(pairs, str) else pairs.cpu()
    want = _scores_and_grads("ref", ref_inputs, ref_pairs, slope)
    rtol, atol = TOL[dtype]
    names = ["s_pos", "s_neg", "dA", "dC", "db1", "dw2", "db2"]
    for name, x, y in zip(names, got, want, strict=True):
        assert x.dtype == dtype and x.device.type == device, name
        scale = max(1.0, float(y.detach().abs().max()))  # sums of many rounded terms: error grows with the sum
        torch.testing.assert_close(x.detach().to(device="cpu", dtype=acc), y.detach(), rtol=rtol, atol=atol * scale,
                                   msg=lambda m, name=name: f"{name} {impl} {kind}: {m}")


@pytest.mark.parametrize("kind", ["index", "all", "list"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_kernel_matches_reference(kind: str, dtype: torch.dtype, shape: tuple[int, int, int]) -> None:
    _compare("cpu", "cpu", dtype, kind, shape, seed=zlib.crc32(repr((kind, shape)).encode()) % 1000)


def test_cpu_kernel_rejects_an_empty_pair_list_like_the_reference() -> None:
    """An empty pair list is a caller's bug (no loss to compute): every impl says so the same way."""
    a, c, b1, w2, b2 = _inputs(4, 3, 9, torch.float64, "cpu", seed=3)
    for impl in ("ref", "cpu"):
        with pytest.raises(ValueError, match="pair list is empty"):
            pair_scores(a, c, b1, w2, b2, pairs=torch.empty(0, 2, dtype=torch.int64), impl=impl)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_cpu_kernel_same_result_for_any_thread_count(threads: int) -> None:
    """Per-thread partial sums must not depend on how rows are split between threads (beyond rounding)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _compare("cpu", "cpu", torch.float64, "all", (17, 9, 33), seed=5)
        _compare("cpu", "cpu", torch.float64, "list", (17, 9, 33), seed=6)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["index", "all", "list"])
def test_gradcheck_cpu_kernel_float64(kind: str) -> None:
    br, bf, hidden = (4, 4, 9) if kind == "index" else (4, 3, 9)
    a, c, b1, w2, b2 = _inputs(br, bf, hidden, torch.float64, "cpu", seed=7)
    pairs = _pairs(kind, br, bf, "cpu", seed=8)

    def fn(*xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pair_scores(*xs, pairs=pairs, negative_slope=0.3, impl="cpu")

    assert torch.autograd.gradcheck(fn, (a, c, b1, w2, b2))


def test_custom_op_registration_passes_opcheck() -> None:
    """Schema, fake kernel (torch.compile / export) and autograd registration of the torch.library op."""
    a, c, b1, w2, _ = _inputs(5, 3, 11, torch.float32, "cpu", seed=9)
    pair_list = torch.tensor([[0, 1], [4, 2], [4, 2]])
    for mode, pairs in ((1, torch.empty(0, 2, dtype=torch.int64)), (2, pair_list)):
        torch.library.opcheck(torch.ops.tgan_deploy.pair_scores.default, (a, c, b1, w2, pairs, mode, 0.3))


def test_torch_export_traces_the_fused_op() -> None:
    head = build_critic_head()
    x_r, x_f = torch.randn(6, 8), torch.randn(5, 8)

    class AllPairs(torch.nn.Module):
        def forward(self, e_r: torch.Tensor, e_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return head.pair_scores(e_r, e_f, "all", impl="cpu")

    program = torch.export.export(AllPairs(), (x_r, x_f))
    assert any("tgan_deploy.pair_scores" in str(n.target) for n in program.graph.nodes)
    torch.testing.assert_close(program.module()(x_r, x_f), AllPairs()(x_r, x_f))


@pytest.mark.slow
def test_torch_compile_fullgraph_through_auto_dispatch() -> None:
    """torch.compile traces pair_scores (auto dispatch included) without a graph break; same loss and grads."""
    inputs = _inputs(40, 30, 64, torch.float32, "cpu", seed=4)[:4]

    def loss(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        s_pos, s_neg = pair_scores(a, c, b1, w2, pairs="all", impl="auto")
        return torch.nn.functional.softplus(-s_pos).mean() + torch.nn.functional.softplus(s_neg).mean()

    compiled = torch.compile(loss, fullgraph=True)
    got = [compiled(*inputs), *torch.autograd.grad(compiled(*inputs), inputs)]
    want = [loss(*inputs), *torch.autograd.grad(loss(*inputs), inputs)]
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y)


def build_critic_head() -> torch.nn.Module:
    from tgan_deploy.models.heads import PairHead

    torch.manual_seed(0)
    return PairHead(feature_dim=8, hidden=16, output_bias=True)


def test_auto_dispatch_rule() -> None:
    """The documented rule (docs/pairing.md): index pairing and P * H <= 2^16 run on the reference."""
    a, small, medium = torch.randn(256, 512), torch.randn(16, 64), torch.randn(40, 64)
    assert choose_impl("auto", a, a, "all") == "cpu"
    assert choose_impl("auto", a, a, torch.zeros(300, 2, dtype=torch.int64)) == "cpu"
    assert choose_impl("auto", medium, medium, "all") == "cpu"  # 1,600 pairs x 64 units
    assert choose_impl("auto", a, a, "index") == "ref"
    assert choose_impl("auto", small, small, "all") == "ref"  # 256 pairs x 64 units
    assert choose_impl("auto", a, a, torch.zeros(100, 2, dtype=torch.int64)) == "ref"  # 100 pairs x 512 units
    assert choose_impl("auto", a.bfloat16(), a.bfloat16(), "all") == "ref"  # CPU kernel: float32 / float64
    assert choose_impl("cpu", small, small, "index") == "cpu"  # explicit requests are obeyed
    with pytest.raises(ValueError, match="needs cuda tensors"):
        choose_impl("cuda", a, a, "all")
    with pytest.raises(ValueError, match="takes"):
        choose_impl("cpu", a.half(), a.half(), "all")


def test_critic_all_pairs_uses_kernel_and_matches_reference() -> None:
    """The T-critic (spectral-normalised MLP encoder + pair head) under 'all' pairing: auto == ref, grads too."""
    from tgan_deploy.config import ModelConfig

    torch.manual_seed(0)
    critic = build_critic(ModelConfig(arch="mlp", toy_hidden=32, head_hidden=64))
    x_r, x_f = torch.randn(37, 2), torch.randn(29, 2)
    assert choose_impl("auto", torch.empty(37, 64), torch.empty(29, 64), "all") == "cpu"
    outs = {}
    for impl in ("auto", "ref"):
        critic.zero_grad()
        s_pos, s_neg = critic.pair_scores(x_r, x_f, "all", impl=impl)
        (s_pos.sum() - 2 * s_neg.sum()).backward()
        grads = [p.grad.clone() for p in critic.parameters() if p.grad is not None]
        outs[impl] = [s_pos.detach(), s_neg.detach(), *grads]
    assert len(outs["auto"]) == len(outs["ref"]) > 2
    for x, y in zip(outs["auto"], outs["ref"], strict=True):  # float32 sums over 1,073 pairs: scaled atol
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5 * max(1.0, float(y.abs().max())))


def test_auto_falls_back_with_one_warning_when_the_build_fails(tmp_path: Path) -> None:
    """A real failed build (the C++ compiler is `false`, the cache is empty): one warning, reference results."""
    code = (
        "import warnings, torch\n"
        "from tgan_deploy.ops import pair_scores\n"
        "a, c, b1, w2 = torch.randn(30, 64), torch.randn(40, 64), torch.randn(64), torch.randn(64)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(3):\n"
        "        got = pair_scores(a, c, b1, w2, pairs='all', impl='auto')\n"
        "want = pair_scores(a, c, b1, w2, pairs='all', impl='ref')\n"
        "assert all(torch.equal(x, y) for x, y in zip(got, want))\n"
        "msgs = [str(w.message) for w in caught if 'pair-score kernel' in str(w.message)]\n"
        "print(len(msgs)); print(msgs[0] if msgs else '')\n"
    )
    env = repo_env(TGAN_DEPLOY_CACHE=str(tmp_path), CXX="false")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    count, message = proc.stdout.splitlines()[:2]
    assert count == "1"
    assert "TGAN_DEPLOY_EXT_VERBOSE=1" in message and "reference" in message


# ---------------------------------------------------------------- CUDA (skipped without a GPU)

@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("kind", ["index", "all", "list"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [*SHAPES, (130, 67, 515)])
def test_cuda_kernel_matches_reference(kind: str, dtype: torch.dtype, shape: tuple[int, int, int]) -> None:
    _compare("cuda", "cuda", dtype, kind, shape, seed=zlib.crc32(repr((kind, shape)).encode()) % 1000)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("kind", ["index", "all", "list"])
def test_gradcheck_cuda_kernel_float64(kind: str) -> None:
    br, bf, hidden = (5, 5, 37) if kind == "index" else (5, 70, 37)
    a, c, b1, w2, b2 = _inputs(br, bf, hidden, torch.float64, "cuda", seed=11)
    pairs = _pairs(kind, br, bf, "cuda", seed=12)

    def fn(*xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pair_scores(*xs, pairs=pairs, negative_slope=0.3, impl="cuda")

    # pair lists sum dA / dC with atomicAdd: the order, hence the last bits, may differ between two backwards
    assert torch.autograd.gradcheck(fn, (a, c, b1, w2, b2), nondet_tol=1e-12 if kind == "list" else 0.0)


@pytest.mark.gpu
@gpu
def test_cuda_auto_picks_the_cuda_kernel() -> None:
    a = torch.randn(64, 512, device="cuda")
    assert choose_impl("auto", a, a, "all") == "cuda"
    assert choose_impl("auto", a.bfloat16(), a.bfloat16(), "all") == "cuda"

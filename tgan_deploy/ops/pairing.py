"""Public pair-score op: (s+, s-) for pairs of real and fake encodings, T-GAN's critic head.

    A = E(x_r) W1^T  [B_r, H],  C = E(x_f) W1^T  [B_f, H],  b1 [H],  w2 [H],  b2 scalar or None
    s+_p = w2 . LeakyReLU(A_i - C_j + b1) + b2,   s-_p = w2 . LeakyReLU(C_j - A_i + b1) + b2

`pairs`: "index" (i with i; B_r == B_f), "all" (every (i, j), pair p = i * B_f + j), or an int64
tensor [P, 2] of (real, fake) indices. docs/method.md §3-§4.

`impl`:
- "ref": plain PyTorch (pairing_ref.py), the oracle for the fused kernels.
- "cpu" / "cuda": the fused kernels (pairing.cpp / pairing.cu, built on first use by build.py); forward
  and backward without a [P, H] tensor. An explicit request fails loudly if the kernel cannot be used.
- "auto" (default): the fused kernel for the tensors' device, except where the reference is as good
  (see `choose_impl`). Before its first use on a (device, dtype) the kernel must pass a self-check
  (selfcheck.py: a small problem through kernel and reference, values and gradients); if the build fails, the
  check fails or the kernel raises, ONE warning with the numbers and the reference from then on.

`use_kernel(kind, kernel)` puts another kernel (anything with the extension's forward / backward) in place of
the built one, for a kernel under development or a deliberately wrong one in the tests.

The fused path is a torch.library custom op (`tgan_deploy::pair_scores`) with a fake kernel and autograd,
so torch.compile and torch.export trace through it. Its backward is first-order only (no double backward).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

import torch

from tgan_deploy.ops.pairing_ref import pair_scores_ref
from tgan_deploy.ops.selfcheck import MODE_ALL, MODE_INDEX, MODE_LIST, PairKernel, SelfCheckResult, verify_kernel

IMPLS = ("auto", "ref", "cpu", "cuda")
_MODES = {"index": MODE_INDEX, "all": MODE_ALL}
# dtypes each fused kernel takes (the CUDA kernel accumulates half / bfloat16 in float32).
_KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}
# "auto" keeps index pairing on the reference: it never holds more than [B, H] tensors, so the kernel saves no
# memory, and the reference's few ATen calls were as fast or faster at every size measured (B up to 1024,
# H = 512). Any other problem of at most AUTO_REF_MAX_WORK pair-units (P * H) also runs on the reference:
# there the fixed cost of the custom-op call (~0.3 ms) outweighs the work (benchmarks/results/pairing-cpu.md).
AUTO_REF_PAIRINGS = ("index",)
AUTO_REF_MAX_WORK = 1 << 16

_build_failed: dict[str, str] = {}  # kind -> first line of the error, after the one warning
_kernel_overrides: dict[str, PairKernel] = {}  # kind -> the kernel `use_kernel` put in place of the built one
_verdicts: dict[tuple[str, torch.dtype], SelfCheckResult] = {}  # (device, dtype) -> the self-check's result
_verdict_lock = threading.Lock()  # one self-check per (device, dtype), however many threads ask at once


class KernelSelfCheckWarning(RuntimeWarning):
    """The fused kernel failed its self-check under impl="auto"; the reference is used instead."""


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


# ---------------------------------------------------------------- the custom op (fused kernels)

def _kernel(kind: str) -> PairKernel:
    """The kernel the fused path runs for "cpu" / "cuda": `use_kernel`'s, else the built extension."""
    override = _kernel_overrides.get(kind)
    if override is not None:
        return override
    from tgan_deploy.ops import build  # imported on use: `python -m tgan_deploy.ops.build` runs it as __main__

    module: PairKernel = build.load_pairing(kind).module
    return module


def _extension(device: torch.device) -> PairKernel:
    return _kernel("cuda" if device.type == "cuda" else "cpu")


@contextlib.contextmanager
def use_kernel(kind: str, kernel: PairKernel) -> Iterator[PairKernel]:
    """Inside the block, the fused path of `kind` ("cpu" / "cuda") runs `kernel` instead of the built extension:
    explicit impl=kind calls it as is, impl="auto" self-checks it first. Self-check verdicts are forgotten on
    entry and on exit, so "auto" always judges the kernel in place. Not for concurrent use with other threads
    that change kernels."""
    if kind not in _KERNEL_DTYPES:
        raise ValueError(f"kind must be one of {tuple(_KERNEL_DTYPES)}, got {kind!r}")
    with _verdict_lock:
        previous = _kernel_overrides.get(kind)
        _kernel_overrides[kind] = kernel
        _forget_verdicts(kind)
    try:
        yield kernel
    finally:
        with _verdict_lock:
            if previous is None:
                _kernel_overrides.pop(kind, None)
            else:
                _kernel_overrides[kind] = previous
            _forget_verdicts(kind)


def _forget_verdicts(kind: str) -> None:
    for key in [k for k in _verdicts if torch.device(k[0]).type == kind]:
        del _verdicts[key]


def self_check_verdict(device: str | torch.device, dtype: torch.dtype) -> SelfCheckResult | None:
    """The cached self-check result for (device, dtype), or None if "auto" has not needed one yet."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" means the current device, as tensors say "cuda:0"
        device = torch.device("cuda", torch.cuda.current_device())
    return _verdicts.get((str(device), dtype))


def _num_pairs(a: torch.Tensor, c: torch.Tensor, pairs: str) -> int:
    return a.shape[0] if pairs == "index" else a.shape[0] * c.shape[0]


@torch.library.custom_op("tgan_deploy::pair_scores", mutates_args=())
def _fused(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, pairs: torch.Tensor, mode: int,
           negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    s_pos, s_neg = _extension(a.device).forward(a, c, b1, w2, pairs, mode, negative_slope)
    return s_pos, s_neg


@_fused.register_fake
def _fused_fake(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, pairs: torch.Tensor,
                mode: int, negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    n = pairs.shape[0] if mode == MODE_LIST else _num_pairs(a, c, "index" if mode == _MODES["index"] else "all")
    return a.new_empty(n), a.new_empty(n)


@torch.library.custom_op("tgan_deploy::pair_scores_backward", mutates_args=())
def _fused_backward(g_pos: torch.Tensor, g_neg: torch.Tensor, a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor,
                    w2: torch.Tensor, pairs: torch.Tensor, mode: int,
                    negative_slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    da, dc, db1, dw2 = _extension(a.device).backward(g_pos, g_neg, a, c, b1, w2, pairs, mode, negative_slope)
    return da, dc, db1, dw2


@_fused_backward.register_fake
def _fused_backward_fake(g_pos: torch.Tensor, g_neg: torch.Tensor, a: torch.Tensor, c: torch.Tensor,
                         b1: torch.Tensor, w2: torch.Tensor, pairs: torch.Tensor, mode: int,
                         negative_slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.empty_like(a), torch.empty_like(c), torch.empty_like(b1), torch.empty_like(w2)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    a, c, b1, w2, pairs, mode, negative_slope = inputs
    ctx.save_for_backward(a, c, b1, w2, pairs)
    ctx.mode, ctx.negative_slope = mode, negative_slope


def _backward(ctx, g_pos, g_neg):  # type: ignore[no-untyped-def]
    a, c, b1, w2, pairs = ctx.saved_tensors
    da, dc, db1, dw2 = _fused_backward(g_pos, g_neg, a, c, b1, w2, pairs, ctx.mode, ctx.negative_slope)
    return da, dc, db1, dw2, None, None, None


_fused.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------- dispatch

@torch.compiler.assume_constant_result  # torch.compile: decided once at trace time, not traced into
def _kernel_usable(kind: str, device: str, dtype: torch.dtype) -> bool:
    """Build (or load) the kernel for `kind` and self-check it on (device, dtype), once each: on a failure warn
    ONCE and remember, so auto uses the reference from then on."""
    if kind in _build_failed:
        return False
    verdict = _verdicts.get((device, dtype))
    if verdict is None and kind == "cuda" and torch.cuda.is_current_stream_capturing():
        # the check copies and synchronises, which a capture forbids (and it would judge the capture, not the kernel)
        raise RuntimeError("pair_scores(impl='auto') is first used on this device and dtype inside CUDA graph capture, "
                           "where its kernel self-check cannot run: make one call before capturing (the usual warm-up)")
    if verdict is None:
        with _verdict_lock:
            verdict = _verdicts.get((device, dtype))  # another thread may have checked while we waited
            if verdict is None:
                try:
                    kernel = _kernel(kind)
                except Exception as exc:  # a compiler error, a missing toolchain, a broken cache entry
                    _warn_build_failed(kind, exc)
                    return False
                verdict = verify_kernel(kernel, device, dtype)
                _verdicts[(device, dtype)] = verdict
                if not verdict.ok:
                    warnings.warn(
                        f"tgan_deploy: the fused {kind} pair-score kernel FAILED its self-check on "
                        f"{verdict.describe()}. impl='auto' uses the PyTorch reference on {device} for "
                        f"{dtype} from now on (same results, more memory for 'all' pairing); impl='{kind}' still "
                        f"runs the kernel. Please report this with your GPU, driver and torch versions "
                        f"(docs/pairing.md, Self-check).", KernelSelfCheckWarning, stacklevel=4)
    return verdict.ok


def _warn_build_failed(kind: str, exc: Exception) -> None:
    from tgan_deploy.ops import build

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    _build_failed[kind] = first
    warnings.warn(
        f"tgan_deploy: the fused {kind} pair-score kernel could not be built ({first}); using the PyTorch "
        f"reference instead (same results, more memory for 'all' pairing). Set {build.VERBOSE_ENV}=1 to see "
        f"the compiler output.", RuntimeWarning, stacklevel=5)


def choose_impl(impl: str, a: torch.Tensor, c: torch.Tensor, pairs: str | torch.Tensor) -> str:
    """The implementation a call runs: "ref", "cpu" or "cuda".

    auto: the reference for index pairing (AUTO_REF_PAIRINGS), for small problems (P * H <= AUTO_REF_MAX_WORK),
    for devices other than CPU / CUDA and for dtypes the device's kernel lacks (the CPU kernel takes float32 /
    float64 only); otherwise the device's fused kernel, unless it cannot be built or fails its self-check on
    this (device, dtype) (one warning, then the reference).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "ref":
        return "ref"
    kind = a.device.type
    if impl in ("cpu", "cuda"):
        if kind != impl:
            raise ValueError(f"impl={impl!r} needs {impl} tensors, got tensors on {a.device}")
        if a.dtype not in _KERNEL_DTYPES[impl]:
            raise ValueError(f"the {impl} pair-score kernel takes {_KERNEL_DTYPES[impl]}, got {a.dtype}; "
                             "use impl='ref'")
        return impl
    if kind not in _KERNEL_DTYPES or a.dtype not in _KERNEL_DTYPES[kind]:
        return "ref"
    if isinstance(pairs, str) and pairs in AUTO_REF_PAIRINGS:
        return "ref"
    num_pairs = pairs.shape[0] if isinstance(pairs, torch.Tensor) else _num_pairs(a, c, pairs)
    if num_pairs * a.shape[1] <= AUTO_REF_MAX_WORK:
        return "ref"
    return kind if _kernel_usable(kind, str(a.device), a.dtype) else "ref"


def pair_scores(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                b2: torch.Tensor | None = None, *, pairs: str | torch.Tensor = "index",
                negative_slope: float = 0.3, impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (s_pos, s_neg), each [P]; differentiable in A, C, b1, w2 and b2."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check(a, c, b1, w2, b2, pairs)
    chosen = choose_impl(impl, a, c, pairs)
    if chosen == "ref":
        return pair_scores_ref(a, c, b1, w2, b2, pairs, negative_slope)
    if isinstance(pairs, str):
        mode, pair_list = _MODES[pairs], torch.empty(0, 2, dtype=torch.int64, device=a.device)
    else:
        mode, pair_list = MODE_LIST, pairs.to(a.device)
    s_pos, s_neg = _fused(a, c, b1, w2, pair_list, mode, float(negative_slope))
    if b2 is not None:  # b2 shifts every score: its gradient, sum(g+) + sum(g-), comes from autograd here
        b2 = b2.reshape(())
        s_pos, s_neg = s_pos + b2, s_neg + b2
    return s_pos, s_neg

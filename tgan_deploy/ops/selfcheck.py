"""The fused kernels' contract (`PairKernel`) and the self-check that runs one small problem through a kernel
and the reference before `impl="auto"` trusts it (docs/pairing.md, "Self-check").

`verify_kernel(kernel, device, dtype)` scores index pairs, all pairs and a pair list with the kernel's forward
and backward, computes the same scores and gradients with the float64 reference, and compares all six outputs
(s+, s-, dA, dC, db1, dw2) of each: max |kernel - reference| / max |reference| must stay within the dtype's
tolerance (`TOLERANCE`). An exception from the kernel (a CUDA error, a wrong shape) fails the check too.

The problem is built so that a correct kernel leaves almost nothing to round: every input is a small multiple
of a power of two (exact in bfloat16 and in every wider type), b1 is an odd multiple of 1/16 while A and C are
multiples of 1/8 (so no h = +-(A_i - C_j) + b1 is 0: nobody sits on LeakyReLU's kink), and the slope is 1/4.
Then the only differences left are the kernel's summation order (float32 sums of exact terms, far below the
tolerance) and the final rounding of outputs to the input dtype, which `TOLERANCE` allows for four times.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Protocol

import torch

from tgan_deploy.ops.pairing_ref import pair_scores_ref

MODE_INDEX, MODE_ALL, MODE_LIST = 0, 1, 2  # the kernels' `mode` argument (pairing.h)


class PairKernel(Protocol):
    """What the fused path calls: the built extension module, or anything with the same two functions.

    forward -> (s_pos, s_neg) [P] in A's dtype; backward -> (dA, dC, db1, dw2) in the dtypes of (A, C, b1, w2).
    `pairs` is an int64 [P, 2] tensor for MODE_LIST and an empty [0, 2] one otherwise. No autograd: the caller
    (the custom op in pairing.py) wires backward to forward.
    """

    def forward(self, a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, pairs: torch.Tensor,
                mode: int, negative_slope: float) -> tuple[torch.Tensor, torch.Tensor]: ...

    def backward(self, g_pos: torch.Tensor, g_neg: torch.Tensor, a: torch.Tensor, c: torch.Tensor,
                 b1: torch.Tensor, w2: torch.Tensor, pairs: torch.Tensor, mode: int,
                 negative_slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...


# Per input dtype: the largest max |kernel - reference| / max |reference| accepted for any output. Half types:
# 4 units of the final rounding (2^-11 float16, 2^-8 bfloat16); float32 / float64: far above their
# summation-order noise (the CPU kernel is exact here: 0.0), far below real bugs: the tests' wrong kernels miss
# by 3e-2 (a hard-coded slope) to 1.6 (a dropped gradient term); one dropped hidden unit of 133 gives 5e-2.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 4 * 2.0 ** -11, torch.bfloat16: 4 * 2.0 ** -8}

# Sizes just past each CUDA tile / block (pairing.cu, pairing.h) with a ragged remainder: all pairs (H = 37):
# forward 64 x 64 pair tiles and 16-unit chunks, backward 32 rows x 32 units; index / list (H = 133): 32 lanes
# over H, 64-pair chunks, 128-unit blocks. B_r != B_f catches a swapped i / j; the list repeats rows (atomicAdd).
ROWS_A, ROWS_C, LIST_PAIRS = 67, 66, 150
HIDDEN = {"index": 133, "all": 37, "list": 133}
NEGATIVE_SLOPE = 0.25  # exact in binary; not the default 0.3, so a kernel ignoring the argument fails
CASES = ("index", "all", "list")
OUTPUTS = ("s_pos", "s_neg", "dA", "dC", "db1", "dw2")
_MODE = {"index": MODE_INDEX, "all": MODE_ALL, "list": MODE_LIST}
_SEED = 20261202


@dataclass(frozen=True)
class SelfCheckResult:
    """One kernel's verdict on one device and dtype. `errors`: (case, output) -> max |kernel - reference| /
    max |reference|; `error`: what went wrong otherwise (the kernel raised, broke the contract or wrote into its
    inputs), else None."""

    device: str
    dtype: torch.dtype
    tolerance: float
    errors: dict[tuple[str, str], float]
    error: str | None
    seconds: float

    @property
    def failures(self) -> dict[tuple[str, str], float]:
        return {k: e for k, e in self.errors.items() if not e <= self.tolerance}  # NaN fails too

    @property
    def ok(self) -> bool:
        return self.error is None and len(self.errors) == len(CASES) * len(OUTPUTS) and not self.failures

    @property
    def worst(self) -> float:
        values = list(self.errors.values())
        return math.nan if not values or any(math.isnan(v) for v in values) else max(values)

    def describe(self) -> str:
        """One line with the numbers, for the warning and the benchmark."""
        where = f"{self.device} {str(self.dtype).removeprefix('torch.')}"
        if self.error is not None:
            return f"{where}: {self.error}"
        if self.ok:
            return f"{where}: ok, worst relative error {self.worst:.1e} (tolerance {self.tolerance:.1e})"
        shown = sorted(self.failures.items(), key=lambda kv: (not math.isnan(kv[1]), -kv[1]))  # NaN first
        listed = ", ".join(f"{case} {name} {err:.2e}" for (case, name), err in shown[:4])
        more = f" and {len(shown) - 4} more" if len(shown) > 4 else ""
        return (f"{where}: max |kernel - reference| / max |reference| above the tolerance {self.tolerance:.1e} "
                f"for {listed}{more} (worst {self.worst:.2e})")


def _grid(gen: torch.Generator, shape: tuple[int, ...], low: int, high: int, scale: float) -> torch.Tensor:
    return torch.randint(low, high + 1, shape, generator=gen, dtype=torch.float64) * scale


@functools.cache
def _problem() -> dict[str, dict[str, torch.Tensor]]:
    """Per case: the float64 CPU inputs (a, c, b1, w2, pairs, g_pos, g_neg) and the reference's six outputs."""
    gen = torch.Generator().manual_seed(_SEED)  # a private stream: the caller's random state is untouched
    units = max(HIDDEN.values())
    a = _grid(gen, (ROWS_A, units), -16, 16, 1 / 8)
    c = _grid(gen, (ROWS_C, units), -16, 16, 1 / 8)
    b1 = (2 * _grid(gen, (units,), -8, 7, 1.0) + 1) / 16  # odd / 16: h is never 0
    w2 = _grid(gen, (units,), -16, 16, 1 / 64)
    pair_list = torch.stack([torch.randint(0, ROWS_A, (LIST_PAIRS,), generator=gen),
                             torch.randint(0, ROWS_C, (LIST_PAIRS,), generator=gen)], 1)
    problems = {}
    for case in CASES:
        h = HIDDEN[case]
        inputs = (a[:ROWS_C, :h] if case == "index" else a[:, :h], c[:, :h], b1[:h], w2[:h])
        pairs = pair_list if case == "list" else torch.empty(0, 2, dtype=torch.int64)
        num_pairs = {"index": ROWS_C, "all": ROWS_A * ROWS_C, "list": LIST_PAIRS}[case]
        g_pos, g_neg = _grid(gen, (num_pairs,), -8, 8, 1 / 8), _grid(gen, (num_pairs,), -8, 8, 1 / 8)
        leaves = [t.contiguous().requires_grad_() for t in inputs]
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast("cpu", enabled=False):
            a_leaf, c_leaf, b1_leaf, w2_leaf = leaves
            s_pos, s_neg = pair_scores_ref(a_leaf, c_leaf, b1_leaf, w2_leaf, None, case if case != "list" else pairs,
                                           NEGATIVE_SLOPE)
            grads = torch.autograd.grad((s_pos * g_pos).sum() + (s_neg * g_neg).sum(), leaves)
        problems[case] = {**dict(zip(("a", "c", "b1", "w2"), (t.detach() for t in leaves), strict=True)),
                          "pairs": pairs, "g_pos": g_pos, "g_neg": g_neg,
                          **dict(zip(OUTPUTS, (s_pos.detach(), s_neg.detach(), *grads), strict=True))}
    return problems


class _ContractError(Exception):
    """The kernel's outputs are not what PairKernel promises (count, shape, dtype, device)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # asynchronous CUDA errors surface here, inside the check


def _run_case(kernel: PairKernel, case: str, device: torch.device,
              dtype: torch.dtype) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The kernel's six outputs on one case (shapes and dtypes checked against the contract), and how many input
    elements the kernel changed (a kernel must not write into its inputs: they are the caller's tensors)."""
    prob = _problem()[case]
    param_dtype = torch.promote_types(dtype, torch.float32)  # half A / C with float32 b1 / w2, as under autocast
    names = ("a", "c", "b1", "w2", "g_pos", "g_neg")
    # copies, never the cached tensors themselves: a kernel that writes into its inputs must not spoil later checks
    inputs = {k: prob[k].to(device=device, dtype=param_dtype if k in ("b1", "w2") else dtype, copy=True)
              for k in names}
    a, c, b1, w2, g_pos, g_neg = (inputs[k] for k in names)
    pairs = prob["pairs"].to(device, copy=True)
    with torch.no_grad():
        s_pos, s_neg = kernel.forward(a, c, b1, w2, pairs, _MODE[case], NEGATIVE_SLOPE)
        grads = kernel.backward(g_pos, g_neg, a, c, b1, w2, pairs, _MODE[case], NEGATIVE_SLOPE)
    outs = [s_pos, s_neg, *grads]
    if len(outs) != len(OUTPUTS):
        raise _ContractError(f"{case}: the kernel returned {len(outs)} outputs instead of {len(OUTPUTS)}")
    for name, got, like in zip(OUTPUTS, outs, (a, a, a, c, b1, w2), strict=True):
        want = prob[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != like.dtype or got.device != device:
            raise _ContractError(f"{case} {name}: the kernel returned {got.dtype} {tuple(got.shape)} on {got.device}, "
                               f"expected {like.dtype} {tuple(want.shape)} on {device}")
    changed = [(inputs[k].to(torch.float64) != prob[k].to(device)).sum() for k in names]
    return outs, torch.stack([*changed, (pairs != prob["pairs"].to(device)).sum()]).sum()


def verify_kernel(kernel: PairKernel, device: str | torch.device,
                  dtype: torch.dtype = torch.float32) -> SelfCheckResult:
    """Run the small problem (index, all and a list; forward and backward) through `kernel` and the reference."""
    device = torch.device(device)
    start = time.perf_counter()
    errors: dict[tuple[str, str], float] = {}
    failure = None
    try:
        numbers = []
        with torch.inference_mode(False):
            for case in CASES:
                outs, changed = _run_case(kernel, case, device, dtype)
                for name, got in zip(OUTPUTS, outs, strict=True):
                    want = _problem()[case][name].to(device)
                    numbers.append((got.to(torch.float64) - want).abs().max() / want.abs().max().clamp_min(1e-30))
                numbers.append(changed.to(torch.float64))
            _sync(device)
            values = torch.stack(numbers).view(len(CASES), len(OUTPUTS) + 1).tolist()  # one transfer for all
        for case, row in zip(CASES, values, strict=True):
            errors.update({(case, name): err for name, err in zip(OUTPUTS, row, strict=False)})
            if row[-1] and failure is None:
                failure = f"the kernel wrote into its inputs ({case} pairing: {int(row[-1])} elements changed)"
    except _ContractError as exc:
        failure, errors = str(exc), {}
    except Exception as exc:  # a CUDA error, a TORCH_CHECK: the kernel is not to be trusted
        failure = f"the kernel raised {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        errors = {}
    return SelfCheckResult(str(device), dtype, TOLERANCE[dtype], errors, failure, time.perf_counter() - start)

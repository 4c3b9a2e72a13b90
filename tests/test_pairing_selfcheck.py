"""The fused kernel's self-check (ops/selfcheck.py) and the impl="auto" dispatch that trusts a kernel only after it.

The kernels under test are real: the built CPU extension, and deliberately wrong kernels written here, each a
real function with a plausible bug (an edge unit dropped, a hard-coded slope, a lost gradient term, lost updates
for repeated rows, a CUDA error), put in place through the `use_kernel` seam: the same path production takes.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
import torch

from tgan_deploy.ops import pair_scores
from tgan_deploy.ops.build import load_pairing
from tgan_deploy.ops.pairing import KernelSelfCheckWarning, _kernel, self_check_verdict, use_kernel
from tgan_deploy.ops.selfcheck import CASES, MODE_LIST, OUTPUTS, TOLERANCE, PairKernel, verify_kernel

Tensor = torch.Tensor


@pytest.fixture(scope="module")
def ext() -> PairKernel:
    module: PairKernel = load_pairing("cpu").module  # built once per machine, then loaded from the cache
    return module


class Wrapped:
    """The real kernel with one step changed: subclasses override forward or backward."""

    def __init__(self, inner: PairKernel) -> None:
        self.inner = inner

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        return self.inner.forward(a, c, b1, w2, pairs, mode, slope)

    def backward(self, g_pos: Tensor, g_neg: Tensor, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor,
                 mode: int, slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.inner.backward(g_pos, g_neg, a, c, b1, w2, pairs, mode, slope)


class DropsLastUnit(Wrapped):
    """A ragged-edge bug: the forward never reaches the last hidden unit."""

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        return self.inner.forward(a[:, :-1], c[:, :-1], b1[:-1], w2[:-1], pairs, mode, slope)


class HardcodedSlope(Wrapped):
    """Ignores negative_slope and uses the default 0.3 in the forward."""

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        return self.inner.forward(a, c, b1, w2, pairs, mode, 0.3)


class IgnoresNegativeScores(Wrapped):
    """The backward drops the s- direction's gradient: values right, every gradient wrong."""

    def backward(self, g_pos: Tensor, g_neg: Tensor, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor,
                 mode: int, slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.inner.backward(g_pos, torch.zeros_like(g_neg), a, c, b1, w2, pairs, mode, slope)


class LosesRepeatedRows(Wrapped):
    """Pair lists only: a pair whose real row already appeared adds nothing (lost atomicAdd updates)."""

    def backward(self, g_pos: Tensor, g_neg: Tensor, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor,
                 mode: int, slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if mode == MODE_LIST:
            rows = pairs[:, 0].tolist()
            first = torch.tensor([rows.index(r) == p for p, r in enumerate(rows)], device=g_pos.device)
            g_pos, g_neg = g_pos * first, g_neg * first
        return self.inner.backward(g_pos, g_neg, a, c, b1, w2, pairs, mode, slope)


class CudaError(Wrapped):
    """Stands in for a kernel that hits a CUDA error."""

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines of the report")


class WrongDtype(Wrapped):
    """Returns float64 scores for float32 inputs (breaks the contract)."""

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        s_pos, s_neg = self.inner.forward(a, c, b1, w2, pairs, mode, slope)
        return s_pos.double(), s_neg.double()


class WritesIntoInputs(Wrapped):
    """Correct results, but scribbles over A afterwards: must not spoil the next check's cached problem."""

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        out = self.inner.forward(a, c, b1, w2, pairs, mode, slope)
        a.mul_(3.0)
        return out


# ---------------------------------------------------------------- verify_kernel on its own

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_real_cpu_kernel_passes_exactly(ext: PairKernel, dtype: torch.dtype) -> None:
    """Exactly representable inputs: float32 / float64 sums of exact terms leave no rounding at all."""
    result = verify_kernel(ext, "cpu", dtype)
    assert result.ok, result.describe()
    assert set(result.errors) == {(case, name) for case in CASES for name in OUTPUTS}
    assert result.worst == 0.0
    assert result.tolerance == TOLERANCE[dtype] and "ok" in result.describe()


@pytest.mark.parametrize("bug,failing", [
    (DropsLastUnit, {(case, name) for case in CASES for name in ("s_pos", "s_neg")}),
    (HardcodedSlope, {(case, name) for case in CASES for name in ("s_pos", "s_neg")}),
    (IgnoresNegativeScores, {(case, name) for case in CASES for name in ("dA", "dC", "db1", "dw2")}),
    (LosesRepeatedRows, {("list", name) for name in ("dA", "dC", "db1", "dw2")}),
])
def test_wrong_kernels_fail_where_they_are_wrong(ext: PairKernel, bug: Callable[[PairKernel], PairKernel],
                                                 failing: set[tuple[str, str]]) -> None:
    result = verify_kernel(bug(ext), "cpu", torch.float32)
    assert not result.ok and result.error is None
    assert set(result.failures) == failing
    assert min(result.failures.values()) > 100 * result.tolerance  # bugs are far outside, not at the edge
    text = result.describe()
    assert "cpu float32" in text and "tolerance 1.0e-05" in text and f"worst {result.worst:.2e}" in text


def test_a_raising_kernel_or_a_broken_contract_fails_with_the_message(ext: PairKernel) -> None:
    raised = verify_kernel(CudaError(ext), "cpu", torch.float32)
    assert not raised.ok and raised.errors == {}
    assert raised.error == "the kernel raised RuntimeError: CUDA error: an illegal memory access was encountered"
    assert raised.describe() == f"cpu float32: {raised.error}"
    wrong = verify_kernel(WrongDtype(ext), "cpu", torch.float32)
    assert not wrong.ok and wrong.error is not None
    assert wrong.error.startswith("index s_pos: the kernel returned torch.float64 (66,) on cpu, expected torch.float32")
    unsupported = verify_kernel(ext, "cpu", torch.bfloat16)  # the CPU kernel has no bfloat16: a TORCH_CHECK fires
    assert not unsupported.ok and unsupported.error is not None


def test_a_kernel_writing_into_its_inputs_fails_and_does_not_spoil_later_checks(ext: PairKernel) -> None:
    result = verify_kernel(WritesIntoInputs(ext), "cpu", torch.float64)
    assert not result.ok and result.error is not None
    assert result.error.startswith("the kernel wrote into its inputs (index pairing:")
    assert verify_kernel(ext, "cpu", torch.float64).worst == 0.0


# ---------------------------------------------------------------- the impl="auto" dispatch

def _all_pairs_problem(dtype: torch.dtype = torch.float32) -> list[Tensor]:
    g = torch.Generator().manual_seed(1)  # 40 x 30 pairs x 64 units: past the auto rule's reference threshold
    shapes = [(40, 64), (30, 64), (64,), (64,), ()]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def _run(impl: str, inputs: list[Tensor]) -> list[Tensor]:
    s_pos, s_neg = pair_scores(*inputs, pairs="all", impl=impl)
    grads = torch.autograd.grad(s_pos.sum() - 2 * s_neg.sum(), inputs)
    return [s_pos.detach(), s_neg.detach(), *grads]


def _equal(x: list[Tensor], y: list[Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(x, y, strict=True))


def _selfcheck_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, KernelSelfCheckWarning)]


@pytest.fixture
def record() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def test_auto_trusts_the_real_kernel_after_one_check(ext: PairKernel,
                                                    record: list[warnings.WarningMessage]) -> None:
    inputs = _all_pairs_problem()
    with use_kernel("cpu", ext):  # a fresh verdict for this test
        assert self_check_verdict("cpu", torch.float32) is None
        rng = torch.random.get_rng_state()
        got = _run("auto", inputs)
        assert torch.equal(torch.random.get_rng_state(), rng)  # the check has its own random stream
        verdict = self_check_verdict("cpu", torch.float32)
        assert verdict is not None and verdict.ok
        _run("auto", inputs)
        assert self_check_verdict("cpu", torch.float32) is verdict  # checked once, then cached
        assert _equal(got, _run("cpu", inputs))  # auto ran the kernel itself
    assert _selfcheck_warnings(record) == []


def test_auto_warns_once_with_the_numbers_and_uses_the_reference(ext: PairKernel,
                                                                 record: list[warnings.WarningMessage]) -> None:
    inputs = _all_pairs_problem()
    wrong = DropsLastUnit(ext)
    with use_kernel("cpu", wrong):
        for _ in range(3):
            assert _equal(_run("auto", inputs), _run("ref", inputs))
        messages = _selfcheck_warnings(record)
        assert len(messages) == 1
        assert "FAILED its self-check on cpu float32" in messages[0]
        assert "all s_pos" in messages[0] and "tolerance 1.0e-05" in messages[0]
        assert "impl='cpu' still runs the kernel" in messages[0]
        verdict = self_check_verdict("cpu", torch.float32)
        assert verdict is not None and not verdict.ok and verdict.describe() in messages[0]
        # an explicit request is obeyed, not silently replaced: it gets the (wrong) kernel's scores
        s_pos, _ = pair_scores(*inputs, pairs="all", impl="cpu")
        assert not torch.allclose(s_pos, _run("ref", inputs)[0])
        with torch.no_grad():
            want = wrong.forward(inputs[0], inputs[1], inputs[2], inputs[3],
                                 torch.empty(0, 2, dtype=torch.int64), 1, 0.3)[0] + inputs[4]
        assert torch.equal(s_pos.detach(), want)
        # each dtype has its own verdict: float64 is checked (and fails, and warns) separately
        inputs64 = _all_pairs_problem(torch.float64)
        assert _equal(_run("auto", inputs64), _run("ref", inputs64))
        assert len(_selfcheck_warnings(record)) == 2 and "cpu float64" in _selfcheck_warnings(record)[1]
    assert self_check_verdict("cpu", torch.float32) is None  # leaving the block forgets the wrong kernel's verdicts
    assert _kernel("cpu") is ext


def test_a_kernel_error_falls_back_under_auto_and_fails_loudly_when_explicit(
        ext: PairKernel, record: list[warnings.WarningMessage]) -> None:
    inputs = _all_pairs_problem()
    with use_kernel("cpu", CudaError(ext)):
        assert _equal(_run("auto", inputs), _run("ref", inputs))
        messages = _selfcheck_warnings(record)
        assert len(messages) == 1 and "raised RuntimeError: CUDA error: an illegal memory access" in messages[0]
        with pytest.raises(RuntimeError, match="illegal memory access"):
            pair_scores(*inputs, pairs="all", impl="cpu")


class CountsAndWaits(Wrapped):
    """The real kernel, counting forward calls; the first call lingers so that other threads arrive meanwhile."""

    def __init__(self, inner: PairKernel) -> None:
        super().__init__(inner)
        self.calls = 0
        self.lock = threading.Lock()

    def forward(self, a: Tensor, c: Tensor, b1: Tensor, w2: Tensor, pairs: Tensor, mode: int,
                slope: float) -> tuple[Tensor, Tensor]:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            time.sleep(0.2)
        return self.inner.forward(a, c, b1, w2, pairs, mode, slope)


def test_threads_asking_at_once_share_one_check(ext: PairKernel, record: list[warnings.WarningMessage]) -> None:
    counting = CountsAndWaits(ext)
    inputs = [t.detach() for t in _all_pairs_problem()]
    results: list[Tensor] = []
    threads = [threading.Thread(target=lambda: results.append(pair_scores(*inputs, pairs="all")[0]))
               for _ in range(6)]
    with use_kernel("cpu", counting):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        verdict = self_check_verdict("cpu", torch.float32)
    assert verdict is not None and verdict.ok
    assert counting.calls == len(CASES) + len(threads)  # one self-check (3 forwards), then one call per thread
    assert len(results) == len(threads) and all(torch.equal(r, results[0]) for r in results)
    assert _selfcheck_warnings(record) == []


def test_use_kernel_rejects_an_unknown_kind(ext: PairKernel) -> None:
    with pytest.raises(ValueError, match="kind must be one of"), use_kernel("tpu", ext):
        pass


# ---------------------------------------------------------------- CUDA (skipped without a GPU; run by gpu-check)

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_the_real_cuda_kernel_passes(dtype: torch.dtype) -> None:
    result = verify_kernel(load_pairing("cuda").module, "cuda", dtype)
    assert result.ok, result.describe()


@pytest.mark.gpu
def test_cuda_auto_checks_then_falls_back_on_a_kernel_error(record: list[warnings.WarningMessage]) -> None:
    real = load_pairing("cuda").module
    inputs = [t.cuda().detach().requires_grad_() for t in _all_pairs_problem()]
    with use_kernel("cuda", real):
        got = _run("auto", inputs)
        verdict = self_check_verdict(inputs[0].device, torch.float32)
        assert verdict is not None and verdict.ok and _equal(got, _run("cuda", inputs))
    with use_kernel("cuda", CudaError(real)):
        assert _equal(_run("auto", inputs), _run("ref", inputs))
        assert len(_selfcheck_warnings(record)) == 1


@pytest.mark.gpu
def test_first_auto_use_inside_cuda_graph_capture_says_to_warm_up() -> None:
    inputs = [t.cuda().detach() for t in _all_pairs_problem()]
    graph = torch.cuda.CUDAGraph()
    with use_kernel("cuda", load_pairing("cuda").module), torch.cuda.stream(torch.cuda.Stream()):
        graph.capture_begin()
        try:
            with pytest.raises(RuntimeError, match="make one call before capturing"):
                pair_scores(*inputs, pairs="all")
        finally:
            graph.capture_end()
        assert self_check_verdict(inputs[0].device, torch.float32) is None  # nothing judged, nothing cached

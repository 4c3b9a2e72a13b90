"""BatchingSampler: exact per-caller results under real concurrency, grouping, isolation, back-pressure, shutdown."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, wait

import numpy as np
import pytest
from _runtime_factories import TinyModels, eager, shared_tiny_models

from tgan_deploy.runtime import (
    BatcherClosedError,
    BatchingSampler,
    InvalidLatentError,
    InvalidSeedError,
    QueueFullError,
    Sampler,
    latents,
)
from tgan_deploy.runtime.images import to_uint8
from tgan_deploy.runtime.labels import Labels

TIMEOUT = 60  # seconds: any future not done by then is a deadlock


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def sampler(tiny_models: TinyModels) -> Sampler:
    return Sampler.open(tiny_models.export, max_batch=32, threads=1)


def direct(sampler: Sampler, seeds: list[int]) -> np.ndarray:
    return sampler.sample(seeds=seeds)


class GatedSampler(Sampler):
    """A real Sampler whose batches wait for `gate` and fail on a latent row equal to `poison` (test hooks
    for states a tiny model never reaches by itself: a slow batch and a request that breaks a batch)."""

    def __init__(self, inner: Sampler) -> None:
        self.__dict__.update(inner.__dict__)
        self.gate = threading.Event()
        self.gate.set()
        self.poison: np.ndarray | None = None
        self.batch_sizes: list[int] = []

    def sample_latents(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        assert self.gate.wait(TIMEOUT)
        self.batch_sizes.append(len(z))
        if self.poison is not None and (z == self.poison).all(axis=1).any():
            raise RuntimeError("poisoned row")
        return super().sample_latents(z, labels)


def test_batched_results_match_direct(sampler: Sampler) -> None:
    with BatchingSampler(sampler, max_batch=32, max_delay_ms=5) as batcher:
        futures = {s: batcher.submit(range(s, s + 1 + s % 5)) for s in range(40)}
        for s, fut in futures.items():
            assert np.array_equal(fut.result(TIMEOUT), direct(sampler, list(range(s, s + 1 + s % 5))))
        assert batcher.batches_run < 40  # requests were grouped


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_batched_images_match_pytorch_eager(tiny_models: TinyModels, backend: str) -> None:
    path = tiny_models.export if backend == "onnxruntime" else tiny_models.checkpoint
    requests = [[0], [1, 2, 3], [4, 5], [6]]
    expected = to_uint8(eager(tiny_models.checkpoint, latents(range(7), 8))).transpose(0, 2, 3, 1)
    with Sampler.open(path, backend=backend, device="cpu") as sampler, \
            BatchingSampler(sampler, max_delay_ms=200) as batcher:  # long enough to group all four
        futures = [batcher.submit(r) for r in requests]
        got = np.concatenate([f.result(TIMEOUT) for f in futures])
        assert batcher.batches_run == 1
    assert np.abs(got.astype(int) - expected).max() <= 1  # rounding ties only


def test_concurrent_mixed_requests_each_get_their_own_images(sampler: Sampler) -> None:
    """16 threads x 24 requests of 1-9 images; every response equals the direct computation."""
    cache: dict[tuple[int, ...], np.ndarray] = {}
    plans = []
    rng = random.Random(0)
    for _ in range(16):
        plan = []
        for _ in range(24):
            first = rng.randrange(0, 500)
            plan.append(tuple(range(first, first + rng.randint(1, 9))))
        plans.append(plan)
    for plan in plans:
        for seeds in plan:
            cache.setdefault(seeds, direct(sampler, list(seeds)))
    mismatches: list[tuple[int, ...]] = []

    with BatchingSampler(sampler, max_batch=32, max_delay_ms=2, max_queue=64) as batcher:
        def client(plan: list[tuple[int, ...]]) -> None:
            pending = [(seeds, batcher.submit(seeds, timeout=TIMEOUT)) for seeds in plan[:12]]
            pending += [(seeds, batcher.submit(seeds, timeout=TIMEOUT)) for seeds in plan[12:]]
            for seeds, fut in pending:
                if not np.array_equal(fut.result(TIMEOUT), cache[seeds]):
                    mismatches.append(seeds)

        threads = [threading.Thread(target=client, args=(plan,)) for plan in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads), "deadlock: a client never finished"
        assert batcher.images_run == sum(len(s) for plan in plans for s in plan)
        assert batcher.batches_run < 16 * 24
    assert not mismatches


def test_grouping_respects_max_batch_and_delay(sampler: Sampler) -> None:
    gated = GatedSampler(sampler)
    gated.gate.clear()  # hold the first batch so the rest queue up
    with BatchingSampler(gated, max_batch=8, max_delay_ms=50) as batcher:
        first = batcher.submit([0])
        time.sleep(0.2)  # the worker has taken [0] and waits at the gate
        futures = [batcher.submit(range(i, i + 3)) for i in range(5)]  # 15 images -> batches 6 + 6 + 3
        gated.gate.set()
        for f in [first, *futures]:
            f.result(TIMEOUT)
    assert gated.batch_sizes == [1, 6, 6, 3]  # never above max_batch, requests never split


def test_default_continuous_batching_takes_what_queued_while_the_previous_batch_ran(sampler: Sampler) -> None:
    gated = GatedSampler(sampler)
    gated.gate.clear()
    seen: list[int] = []
    with BatchingSampler(gated, max_batch=32, on_batch=seen.append) as batcher:  # default: no wait
        assert batcher.max_delay == 0
        first = batcher.submit([0])
        time.sleep(0.2)  # the worker has taken [0] alone (nothing else queued) and waits at the gate
        futures = [batcher.submit([i]) for i in range(1, 6)]
        assert batcher.queue_depth == 5
        gated.gate.set()
        for f in [first, *futures]:
            f.result(TIMEOUT)
    assert gated.batch_sizes == [1, 5] and seen == [1, 5]  # the five queued requests ran as one batch


def test_submit_latents_validates_in_the_caller_and_matches_the_sampler(sampler: Sampler) -> None:
    z = np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32)
    with BatchingSampler(sampler) as batcher:
        assert np.array_equal(batcher.submit_latents(z).result(TIMEOUT), sampler.sample_latents(z))
        for bad in (z.astype(np.float64), z[:, :7], z[:0], np.full((1, 8), np.nan, np.float32)):
            with pytest.raises(InvalidLatentError):
                batcher.submit_latents(bad)
        assert batcher.queue_depth == 0


def test_oversized_request_runs_alone(sampler: Sampler) -> None:
    with BatchingSampler(sampler, max_batch=4) as batcher:
        out = batcher.sample(list(range(10)), timeout=TIMEOUT)
    assert np.array_equal(out, direct(sampler, list(range(10))))


def test_bad_seeds_raise_at_submit_and_do_not_poison_others(sampler: Sampler) -> None:
    with BatchingSampler(sampler, max_delay_ms=20) as batcher:
        good = batcher.submit([1, 2])
        with pytest.raises(InvalidSeedError):
            batcher.submit([3, -1])
        with pytest.raises(InvalidSeedError):
            batcher.submit([])
        assert np.array_equal(good.result(TIMEOUT), direct(sampler, [1, 2]))


def test_a_failing_batch_fails_only_the_request_that_fails_alone(sampler: Sampler) -> None:
    gated = GatedSampler(sampler)
    gated.poison = latents([13], 8)[0]
    gated.gate.clear()
    with BatchingSampler(gated, max_batch=32, max_delay_ms=50) as batcher:
        futures = [batcher.submit([s, s + 100]) for s in (11, 12, 13, 14)]
        gated.gate.set()
        done, _ = wait(futures, TIMEOUT)
        assert len(done) == 4
    for s, fut in zip((11, 12, 13, 14), futures, strict=True):
        if s == 13:
            with pytest.raises(RuntimeError, match="poisoned"):
                fut.result(0)
        else:
            assert np.array_equal(fut.result(0), direct(sampler, [s, s + 100]))


def test_back_pressure_blocks_then_raises(sampler: Sampler) -> None:
    gated = GatedSampler(sampler)
    gated.gate.clear()
    batcher = BatchingSampler(gated, max_batch=1, max_delay_ms=0, max_queue=2)
    try:
        running = batcher.submit([0])
        time.sleep(0.2)  # worker holds [0] at the gate; the queue is empty
        queued = [batcher.submit([1]), batcher.submit([2])]
        with pytest.raises(QueueFullError, match="full"):
            batcher.submit([3], block=False)
        start = time.monotonic()
        with pytest.raises(QueueFullError):
            batcher.submit([3], timeout=0.2)
        assert 0.15 <= time.monotonic() - start < 5
        unblocked: list[Future[np.ndarray]] = []
        waiter = threading.Thread(target=lambda: unblocked.append(batcher.submit([4], timeout=TIMEOUT)))
        waiter.start()
        gated.gate.set()  # the queue drains: the blocked submit gets in
        waiter.join(TIMEOUT)
        for fut in [running, *queued, *unblocked]:
            assert fut.result(TIMEOUT).shape[0] == 1
    finally:
        gated.gate.set()
        batcher.close()


def test_close_completes_pending_requests(sampler: Sampler) -> None:
    gated = GatedSampler(sampler)
    gated.gate.clear()
    batcher = BatchingSampler(gated, max_batch=4, max_delay_ms=0)
    futures = [batcher.submit([i]) for i in range(20)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.1)
    with pytest.raises(BatcherClosedError):
        batcher.submit([99])
    gated.gate.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    for i, fut in enumerate(futures):
        assert np.array_equal(fut.result(TIMEOUT), direct(sampler, [i]))


def test_close_with_cancel_fails_pending_and_never_hangs(sampler: Sampler) -> None:
    gated = GatedSampler(sampler)
    gated.gate.clear()
    batcher = BatchingSampler(gated, max_batch=2, max_delay_ms=0)
    futures = [batcher.submit([i]) for i in range(10)]
    time.sleep(0.1)
    start = time.monotonic()
    batcher.close(cancel_pending=True, timeout=0.5)  # a batch is stuck at the gate: close returns anyway
    assert time.monotonic() - start < 5
    gated.gate.set()
    _, not_done = wait(futures, TIMEOUT)
    assert not not_done
    outcomes = [type(f.exception()).__name__ if f.exception() else "ok" for f in futures]
    assert outcomes.count("ok") >= 1 and outcomes.count("BatcherClosedError") >= 7
    assert set(outcomes) <= {"ok", "BatcherClosedError"}


def test_shutdown_with_requests_in_flight_from_many_threads(sampler: Sampler) -> None:
    batcher = BatchingSampler(sampler, max_batch=16, max_delay_ms=1)
    results: list[Future[np.ndarray]] = []
    stop = threading.Event()

    def client(c: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                results.append(batcher.submit([c * 1000 + i % 50], timeout=TIMEOUT))
            except BatcherClosedError:
                return
            i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    batcher.close(timeout=TIMEOUT)
    stop.set()
    for t in threads:
        t.join(TIMEOUT)
    _, not_done = wait(results, TIMEOUT)
    assert not not_done and len(results) > 8
    assert all(f.exception() is None or isinstance(f.exception(), BatcherClosedError) for f in results)

"""Latency/throughput measurement shared by `tgan-bench` and benchmarks/runtime.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tgan_deploy.runtime.batching import BatchingSampler
from tgan_deploy.runtime.sampler import Sampler


def summarize(latencies_s: list[float], images: int, wall_s: float) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "images_per_s": images / wall_s, "requests": len(ms)}


def time_calls(fn: Callable[[], Any], iters: int, warmup: int = 2) -> list[float]:
    """Seconds per call of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def concurrent_clients(request: Callable[[int, int], Any], clients: int, requests_each: int
                       ) -> tuple[list[float], float]:
    """`clients` threads each making `requests_each` calls request(client, i); (latencies, wall seconds)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        barrier.wait()
        for i in range(requests_each):
            start = time.perf_counter()
            request(c, i)
            latencies[c].append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return [x for per in latencies for x in per], wall


def bench_sampler(sampler: Sampler, batch: int, concurrency: int, iters: int, batcher: bool = True,
                  max_delay_ms: float = 0.0) -> dict[str, Any]:
    """One row: `concurrency` clients each asking `iters` times for `batch` images (seeded requests)."""
    row: dict[str, Any] = {"backend": sampler.backend, "providers": sampler.providers, "batch": batch,
                           "concurrency": concurrency, "batcher": bool(batcher and concurrency > 1)}
    if concurrency == 1:
        seeds = list(range(batch))
        start = time.perf_counter()
        times = time_calls(lambda: sampler.sample(seeds), iters)
        wall = time.perf_counter() - start
        wall = sum(times) if times else wall
        return {**row, **summarize(times, batch * iters, wall)}

    def seeds_for(c: int, i: int) -> list[int]:
        first = (c * iters + i) * batch
        return list(range(first, first + batch))

    if row["batcher"]:
        with BatchingSampler(sampler, max_batch=sampler.max_batch, max_delay_ms=max_delay_ms) as mb:
            mb.sample(seeds_for(0, 0), timeout=60)  # warm-up
            latencies, wall = concurrent_clients(lambda c, i: mb.sample(seeds_for(c, i), timeout=60),
                                                 concurrency, iters)
    else:
        sampler.sample(seeds_for(0, 0))
        latencies, wall = concurrent_clients(lambda c, i: sampler.sample(seeds_for(c, i)), concurrency, iters)
    return {**row, **summarize(latencies, batch * concurrency * iters, wall)}


def format_table(rows: list[dict[str, Any]]) -> str:
    header = "| backend | batch | clients | batcher | p50 ms | p99 ms | images/s |"
    lines = [header, "|---|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['batch']} | {r['concurrency']} | {'yes' if r['batcher'] else 'no'} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['images_per_s']:.1f} |")
    return "\n".join(lines)

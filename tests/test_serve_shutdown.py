"""tgan-serve under load and at the end of its life: a full queue answers 503 + Retry-After, SIGTERM drains.

Real process, real signal: os.kill(pid, SIGTERM) while large requests are in flight.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from _runtime_factories import TinyModels, shared_tiny_models
from _serve import running_server

from tgan_deploy.runtime import Sampler

BIG = 2048  # images per request: long enough on the tiny model to be in flight when the signal lands


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def serve(tiny_models: TinyModels, log: Path, max_queue: int) -> Any:
    return running_server(tiny_models.export, "--name", "tiny", "--max-queue", str(max_queue), "--max-images",
                          str(BIG), "--max-batch", "256", log=log)


def big_request(url: str, first_seed: int) -> httpx.Response:
    body = {"inputs": [{"name": "seed", "shape": [BIG], "datatype": "INT64",
                        "data": list(range(first_seed, first_seed + BIG))}],
            "outputs": [{"name": "image", "parameters": {"binary_data": True}}]}
    return httpx.post(f"{url}/v2/models/tiny/infer", json=body, timeout=120)


def test_full_queue_answers_503_with_retry_after(tiny_models: TinyModels, tmp_path: Path) -> None:
    with serve(tiny_models, tmp_path / "serve.log", max_queue=1) as (url, _):
        with ThreadPoolExecutor(8) as pool:  # one runs, one waits (max-queue 1), the rest are refused at once
            replies = list(pool.map(lambda c: big_request(url, c * BIG), range(8)))
        statuses = sorted(r.status_code for r in replies)
        assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}
        refused = next(r for r in replies if r.status_code == 503)
        assert int(refused.headers["retry-after"]) >= 1 and "busy" in refused.json()["error"]
        assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_sigterm_finishes_in_flight_requests_then_exits_0(tiny_models: TinyModels, tmp_path: Path) -> None:
    clients = 6
    replies: dict[int, httpx.Response] = {}
    done_at: dict[int, float] = {}
    log = tmp_path / "serve.log"
    with serve(tiny_models, log, max_queue=64) as (url, proc):

        def client(c: int) -> None:
            replies[c] = big_request(url, c * 7)
            done_at[c] = time.monotonic()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _queue_depth(url) < 2:  # one batch runs, more wait behind it
            time.sleep(0.002)
        signalled = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        for t in threads:
            t.join(120)
        assert proc.wait(60) == 0, log.read_text()[-2000:]  # exit 0 after a SIGTERM, not uvicorn's 143
    assert sorted(replies) == list(range(clients))
    assert all(r.status_code == 200 for r in replies.values()), [r.text[:200] for r in replies.values()]
    assert max(done_at.values()) > signalled  # requests were still in flight when the signal arrived
    with Sampler.open(tiny_models.export, threads=1) as sampler:
        expected = sampler.sample(range(7, 7 + 16))
    result = triton.InferResult.from_response_body(
        replies[1].content, header_length=int(replies[1].headers["inference-header-content-length"]))
    assert np.array_equal(result.as_numpy("image")[:16], expected)
    with pytest.raises(httpx.TransportError):  # no longer accepting
        httpx.get(f"{url}/v2/health/live", timeout=5)


def _queue_depth(url: str) -> float:
    """Requests waiting in the batcher behind the batch that runs (the /metrics gauge)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('tgan_serve_queue_depth{model="tiny"}'):
            return float(line.split()[-1])
    return 0.0

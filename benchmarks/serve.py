"""tgan-serve over HTTP vs the in-process BatchingSampler, side by side in one run (the 64 px reference model).

For 1, 8 and 32 concurrent clients making requests of 1 and of 8 images (seeded), three transports:
  in-process   BatchingSampler.sample in this process (what HTTP is compared with; target: HTTP >= 0.8x)
  http         Python's http.client (light, keep-alive, one connection per thread): an Open Inference Protocol
               JSON request for the seeds, the images back as a binary tensor
  tritonclient tritonclient.http with its default settings (binary tensors both ways)
The server is a real `tgan-serve` process on 127.0.0.1 with the same backend, threads and max batch. The
clients run on the same machine as the server (on the 2-core build machine they compete for its cores).
Reports images/s and p50/p99 request latency; each cell runs the three transports back to back, in rotating
order, for --rounds rounds (medians). Measures; never passes or fails on time.

    PYTHONPATH=. python benchmarks/serve.py [--gpu] [--rounds 2] [--images 600] [--threads 2]

Writes benchmarks/results/serve-{cpu,gpu}.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _serve import running_server  # noqa: E402
from runtime import RESULTS, machine, reference_model, write_results  # noqa: E402

from tgan_deploy.runtime import BatchingSampler, Sampler  # noqa: E402
from tgan_deploy.runtime.bench import concurrent_clients, summarize  # noqa: E402

CONCURRENCY, SIZES = (1, 8, 32), (1, 8)
TRANSPORTS = ("in-process", "http", "tritonclient")
MAX_BATCH = 64


def seeds_of(client: int, i: int, size: int) -> list[int]:
    return list(range((client * 10_000 + i) * size, (client * 10_000 + i + 1) * size))


def per_thread(factory: Callable[[], Any]) -> Callable[[], Any]:
    """One client object per thread (HTTP clients are not shared between threads)."""
    local = threading.local()

    def get() -> Any:
        if not hasattr(local, "client"):
            local.client = factory()
        return local.client

    return get


def requesters(url: str, batcher: BatchingSampler, size: int) -> dict[str, Callable[[int, int], Any]]:
    import http.client
    import json
    import urllib.parse

    import tritonclient.http as triton

    address = urllib.parse.urlsplit(url)
    conn = per_thread(lambda: http.client.HTTPConnection(address.hostname, address.port, timeout=120))
    tc = per_thread(lambda: triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=120))

    def in_process(c: int, i: int) -> Any:
        return batcher.sample(seeds_of(c, i, size), timeout=120)

    def over_http(c: int, i: int) -> Any:
        seeds = seeds_of(c, i, size)
        body = json.dumps({"inputs": [{"name": "seed", "shape": [size], "datatype": "INT64", "data": seeds}],
                           "parameters": {"binary_data_output": True}})
        connection = conn()
        connection.request("POST", "/v2/models/ref/infer", body, {"Content-Type": "application/json"})
        reply = connection.getresponse()
        data = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}: {data[:200]!r}")
        return data

    def over_triton(c: int, i: int) -> Any:
        tensor = triton.InferInput("seed", [size], "INT64")
        tensor.set_data_from_numpy(np.asarray(seeds_of(c, i, size), np.int64))
        return tc().infer("ref", [tensor]).as_numpy("image")

    return {"in-process": in_process, "http": over_http, "tritonclient": over_triton}


def bench(url: str, sampler: Sampler, rounds: int, images: int) -> list[dict[str, Any]]:
    rows = []
    with BatchingSampler(sampler, max_batch=MAX_BATCH) as batcher:
        for concurrency in CONCURRENCY:
            for size in SIZES:
                each = max(2, math.ceil(images / (concurrency * size)))
                calls = requesters(url, batcher, size)
                for name in calls:  # warm: connections open, first batches run
                    concurrent_clients(calls[name], concurrency, 1)
                runs: dict[str, list[dict[str, float]]] = {n: [] for n in TRANSPORTS}
                for r in range(rounds):
                    for name in TRANSPORTS[r % 3:] + TRANSPORTS[:r % 3]:
                        latencies, wall = concurrent_clients(calls[name], concurrency, each)
                        runs[name].append(summarize(latencies, concurrency * each * size, wall))
                cell = {"concurrency": concurrency, "images_per_request": size, "requests_per_client": each}
                for name in TRANSPORTS:
                    cell[name] = {k: statistics.median(run[k] for run in runs[name])
                                  for k in ("images_per_s", "p50_ms", "p99_ms")}
                for name in ("http", "tritonclient"):
                    cell[f"{name}_over_in_process"] = cell[name]["images_per_s"] / cell["in-process"]["images_per_s"]
                print(cell, flush=True)
                rows.append(cell)
    return rows


def markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    lines = [
        f"# tgan-serve benchmark ({result['device']})", "",
        f"{info['date']}; {info['cpu']}, {info['cores']} cores (load average at start "
        f"{info['load_average_at_start'][0]:.1f}); onnxruntime {info['onnxruntime']}; {result['model']}; backend "
        f"{result['backend']} {result['providers']}, {result['threads']} threads, max batch {MAX_BATCH}; medians of "
        f"{result['rounds']} rounds. Clients and server share the machine.", "",
        "| clients | images/request | in-process images/s | HTTP images/s (ratio) | tritonclient images/s (ratio) | "
        "p50 / p99 ms in-process | p50 / p99 ms HTTP | p50 / p99 ms tritonclient |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        ip, http, tc = row["in-process"], row["http"], row["tritonclient"]
        lines.append(
            f"| {row['concurrency']} | {row['images_per_request']} | {ip['images_per_s']:.0f} | "
            f"{http['images_per_s']:.0f} ({row['http_over_in_process']:.2f}x) | {tc['images_per_s']:.0f} "
            f"({row['tritonclient_over_in_process']:.2f}x) | {ip['p50_ms']:.1f} / {ip['p99_ms']:.1f} | "
            f"{http['p50_ms']:.1f} / {http['p99_ms']:.1f} | {tc['p50_ms']:.1f} / {tc['p99_ms']:.1f} |")
    ratios = [row[f"{n}_over_in_process"] for row in result["rows"] for n in ("http", "tritonclient")]
    lines += ["", f"HTTP over in-process: {min(ratios):.2f}x to {max(ratios):.2f}x (target >= 0.8x).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true",
                        help="serve on the CUDA GPU (ONNX Runtime CUDA if installed, else the torch backend)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=600, help="images per client group per cell and round")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the backend (both sides)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    device = "cuda" if args.gpu else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, export = reference_model(Path(tmp))
        model = export
        if args.gpu:
            from tgan_deploy.runtime.backends.onnxruntime import cuda_usable

            model = export if cuda_usable() else checkpoint  # no onnxruntime-gpu: the torch backend on CUDA
        log = Path(tmp) / "serve.log"
        serve_args = ["--name", "ref", "--device", device, "--threads", str(args.threads), "--max-batch",
                      str(MAX_BATCH), "--max-queue", "1024", "--log-level", "warning"]
        with running_server(model, *serve_args, log=log) as (url, _), \
                Sampler.open(model, device=device, threads=args.threads, max_batch=MAX_BATCH) as sampler:
            rows = bench(url, sampler, args.rounds, args.images)
            result = {"device": device, "model": "64 px reference generator (base_channels 64, latent 100)",
                      "backend": sampler.backend, "providers": sampler.providers, "threads": args.threads,
                      "rounds": args.rounds, "rows": rows}
    write_results(args.out, f"serve-{device}", {"machine": info, **result}, markdown(info, result))


if __name__ == "__main__":
    main()

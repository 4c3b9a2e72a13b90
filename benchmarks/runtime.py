"""Runtime benchmark on the 64 px reference generator (base_channels 64, latent 100; random init, since
speed does not depend on the weights): every contender measured side by side in one process, in
interleaved rounds, medians quoted with their ratios.

CPU (default):
  1. batch-1 latency      ONNX Runtime CPU vs PyTorch eager CPU, same thread count   (target >= 2x lower)
  2. batch-64 throughput  same pair                                                  (target >= 1.3x higher)
  3. 8 concurrent single-image clients: BatchingSampler (continuous batching, its default) vs unbatched
     calls on ORT, on the reference and on a small model                            (target >= 1.0x: never loses)
GPU (--gpu, for scripts/gpu-check.sh): ORT CUDA, torch eager CUDA, torch CUDA graphs and (if installed)
TensorRT fp16, batch 1 latency and batch 64 throughput.

    PYTHONPATH=. python benchmarks/runtime.py [--gpu] [--rounds 7] [--threads 2]

Writes benchmarks/results/runtime-{cpu,gpu}.{json,md}. Measures; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Neither contender may spin-wait between ops: on the shared 2-core machine a spinning OpenMP pool made
# PyTorch's 2-thread batch-1 latency 3-5x worse, which would flatter ONNX Runtime (whose runtime sessions
# disable spinning). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Random-weight checkpoints come from the tests' factory; exports from tgan_deploy.export, as tgan-export makes them.
sys.path.insert(0, str(ROOT / "tests"))

from _factories import small_config, write_checkpoint  # noqa: E402
from _runtime_factories import export  # noqa: E402

from tgan_deploy.io import write_json_atomic, write_text_atomic  # noqa: E402
from tgan_deploy.runtime import BatchingSampler, Sampler, latents  # noqa: E402
from tgan_deploy.runtime.bench import concurrent_clients  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLIENTS, REQUESTS_EACH = 8, 12


SMALL_MODEL_TEXT = "32 px, base_channels 8, latent 100"


def reference_model(tmp: Path, fp16_engine: bool = False) -> tuple[Path, Path]:
    """Its checkpoint and export directory; fp16_engine: with the exporter's fp16 ONNX file and TensorRT engine."""
    ckpt = write_checkpoint(tmp / "g.pt", small_config(resolution=64, latent_dim=100, base_channels=64))
    return ckpt, export(ckpt, tmp / "export", fp16=fp16_engine, trt=fp16_engine)


def small_model(tmp: Path) -> Path:
    ckpt = write_checkpoint(tmp / "small.pt", small_config(resolution=32, latent_dim=100, base_channels=8))
    return export(ckpt, tmp / "small-export")


def median_ms(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def interleaved(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each round runs every contender once, in rotating order; returns each one's per-round values."""
    values: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            values[name].append(contenders[name]())
    return values


def clients_images_per_s(request: Callable[[int, int], Any]) -> float:
    _, wall = concurrent_clients(request, CLIENTS, REQUESTS_EACH)
    return CLIENTS * REQUESTS_EACH / wall


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    import onnxruntime
    import torch

    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "platform": platform.platform(),
            "cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def batcher_contenders(sampler: Sampler) -> dict[str, Callable[[], float]]:
    """8 clients, one image per request: unbatched (they queue on the Sampler's lock) vs the micro-batcher with
    its default continuous batching, and with an explicit 2 ms wait (the old default)."""

    def unbatched() -> float:
        return clients_images_per_s(lambda c, i: sampler.sample(seeds=[c * 1000 + i]))

    def batched(delay_ms: float | None) -> float:
        options = {} if delay_ms is None else {"max_delay_ms": delay_ms}
        with BatchingSampler(sampler, max_batch=32, **options) as mb:
            mb.sample([0], timeout=60)
            return clients_images_per_s(lambda c, i: mb.sample([c * 1000 + i], timeout=60))

    return {"unbatched": unbatched, "batched": lambda: batched(None), "batched_2ms": lambda: batched(2.0)}


def cpu_bench(ckpt: Path, export: Path, small_export: Path, threads: int, rounds: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    ort = Sampler.open(export, backend="onnxruntime", device="cpu", max_batch=64, threads=threads)
    eager = Sampler.open(ckpt, backend="torch", device="cpu", max_batch=64, threads=threads)
    z1, z64 = latents([0], 100), latents(range(64), 100)
    parity = float(np.abs(ort.generate(z64) - eager.generate(z64)).max())

    lat = interleaved({"ort": lambda: median_ms(lambda: ort.generate(z1), 20),
                       "eager": lambda: median_ms(lambda: eager.generate(z1), 20)}, rounds)
    thr = interleaved({"ort": lambda: 64 / median_ms(lambda: ort.generate(z64), 3) * 1000,
                       "eager": lambda: 64 / median_ms(lambda: eager.generate(z64), 3) * 1000}, rounds)

    conc = interleaved(batcher_contenders(ort), rounds)
    small = Sampler.open(small_export, backend="onnxruntime", device="cpu", max_batch=64, threads=threads)
    conc_small = interleaved(batcher_contenders(small), rounds)
    per_round = {"batch1_latency_ms": lat, "batch64_images_per_s": thr, "clients8_images_per_s": conc,
                 "small_model_clients8_images_per_s": conc_small}
    med = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in per_round.items()}
    return {
        "threads": threads, "rounds": rounds, "parity_max_abs_ort_vs_eager": parity,
        "per_round": per_round,
        "medians": med,
        "ratios": {
            "batch1_latency_eager_over_ort": med["batch1_latency_ms"]["eager"] / med["batch1_latency_ms"]["ort"],
            "batch64_throughput_ort_over_eager":
                med["batch64_images_per_s"]["ort"] / med["batch64_images_per_s"]["eager"],
            "clients8_batched_over_unbatched":
                med["clients8_images_per_s"]["batched"] / med["clients8_images_per_s"]["unbatched"],
            # What any batcher could gain at most on this machine: images/s at batch 64 over batch 1.
            "batching_ceiling_batch64_over_batch1":
                med["batch64_images_per_s"]["ort"] / (1000 / med["batch1_latency_ms"]["ort"]),
            "small_model_clients8_batched_over_unbatched":
                med["small_model_clients8_images_per_s"]["batched"]
                / med["small_model_clients8_images_per_s"]["unbatched"],
        },
    }


def cpu_markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    m, r = result["medians"], result["ratios"]
    return "\n".join([
        "# Runtime benchmark (CPU)",
        "",
        f"{info['date']}; {info['cpu']}, {info['cores']} cores (shared with other jobs; load average at start "
        f"{info['load_average_at_start'][0]:.1f}); torch {info['torch']}, onnxruntime {info['onnxruntime']}.",
        f"64 px reference generator (base_channels 64, latent 100, random init), {result['threads']} threads for "
        f"both backends, medians of {result['rounds']} interleaved rounds. ORT vs eager max abs difference "
        f"{result['parity_max_abs_ort_vs_eager']:.1e}.",
        "",
        "| measurement | ONNX Runtime CPU | PyTorch eager CPU | ratio | target |",
        "|---|---:|---:|---:|---:|",
        f"| batch-1 latency (ms, lower is better) | {m['batch1_latency_ms']['ort']:.2f} | "
        f"{m['batch1_latency_ms']['eager']:.2f} | {r['batch1_latency_eager_over_ort']:.2f}x lower | >= 2x |",
        f"| batch-64 throughput (images/s) | {m['batch64_images_per_s']['ort']:.0f} | "
        f"{m['batch64_images_per_s']['eager']:.0f} | {r['batch64_throughput_ort_over_eager']:.2f}x higher | >= 1.3x |",
        "",
        f"| {CLIENTS} concurrent single-image clients (ORT CPU) | images/s |",
        "|---|---:|",
        f"| unbatched (clients share the Sampler) | {m['clients8_images_per_s']['unbatched']:.0f} |",
        f"| BatchingSampler default (max_batch 32, continuous: each batch takes what queued while the previous "
        f"one ran) | {m['clients8_images_per_s']['batched']:.0f} |",
        f"| BatchingSampler with a 2 ms wait (max_delay_ms=2, the old default) | "
        f"{m['clients8_images_per_s']['batched_2ms']:.0f} |",
        f"| ratio, default over unbatched (target >= 1.0x) | {r['clients8_batched_over_unbatched']:.2f}x |",
        f"| ceiling: batch-64 over batch-1 images/s of the model itself | "
        f"{r['batching_ceiling_batch64_over_batch1']:.2f}x |",
        "",
        f"Same clients on a small model ({SMALL_MODEL_TEXT}), where per-call overhead dominates: "
        f"unbatched {m['small_model_clients8_images_per_s']['unbatched']:.0f} images/s, batcher default "
        f"{m['small_model_clients8_images_per_s']['batched']:.0f} images/s "
        f"({r['small_model_clients8_batched_over_unbatched']:.2f}x, target >= 1.0x), "
        f"{m['small_model_clients8_images_per_s']['batched_2ms']:.0f} images/s with a 2 ms wait.",
        "",
    ])


def gpu_bench(ckpt: Path, export: Path, rounds: int) -> dict[str, Any]:
    """ORT CUDA (if onnxruntime-gpu), torch eager CUDA, torch CUDA graphs, TensorRT fp16 (if installed):
    batch-1 latency, batch-64 throughput, and 8 single-image clients with and without the micro-batcher."""
    import torch

    from tgan_deploy.runtime.backends.onnxruntime import cuda_usable
    from tgan_deploy.runtime.backends.tensorrt import tensorrt_usable

    torch.backends.cudnn.allow_tf32 = False  # eager is the fp32 reference
    notes: list[str] = []
    contenders: dict[str, Sampler] = {
        "torch_eager_cuda": Sampler.open(ckpt, backend="torch", device="cuda"),
        "torch_cuda_graphs": Sampler.open(ckpt, backend="torch", device="cuda", cuda_graphs=True),
    }
    if cuda_usable():
        contenders["ort_cuda"] = Sampler.open(export, backend="onnxruntime", device="cuda")
    else:
        notes.append("onnxruntime-gpu not installed (or no CUDA provider): no ORT CUDA row")
    if tensorrt_usable():  # the fp16 engine main() had the exporter build (tgan-export --fp16 --trt)
        contenders["tensorrt_fp16"] = Sampler.open(export, backend="tensorrt")
    else:
        notes.append("TensorRT not installed: no TensorRT row")
    z1, z64 = latents([0], 100), latents(range(64), 100)
    reference = contenders["torch_eager_cuda"].generate(z64)
    parity = {n: float(np.abs(s.generate(z64) - reference).max()) for n, s in contenders.items()}
    lat = interleaved({n: (lambda s=s: median_ms(lambda: s.generate(z1), 50)) for n, s in contenders.items()},
                      rounds)
    thr = interleaved({n: (lambda s=s: 64 / median_ms(lambda: s.generate(z64), 10) * 1000)
                       for n, s in contenders.items()}, rounds)
    fastest = "tensorrt_fp16" if "tensorrt_fp16" in contenders else "torch_cuda_graphs"
    conc = interleaved(batcher_contenders(contenders[fastest]), rounds)
    return {"providers": {n: s.providers for n, s in contenders.items()}, "parity_max_abs_vs_eager": parity,
            "batch1_latency_ms": {n: statistics.median(v) for n, v in lat.items()},
            "batch64_images_per_s": {n: statistics.median(v) for n, v in thr.items()},
            "clients8_backend": fastest, "clients8_images_per_s": {n: statistics.median(v) for n, v in conc.items()},
            "notes": notes, "rounds": rounds}


def gpu_markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    lines = ["# Runtime benchmark (GPU)", "", f"{info['date']}; {info['platform']}; {info.get('gpu', '')}", "",
             "| backend | batch-1 latency (ms) | batch-64 images/s | max abs vs eager |", "|---|---:|---:|---:|"]
    for name in result["batch1_latency_ms"]:
        lines.append(f"| {name} | {result['batch1_latency_ms'][name]:.3f} | "
                     f"{result['batch64_images_per_s'][name]:.0f} | {result['parity_max_abs_vs_eager'][name]:.1e} |")
    c = result["clients8_images_per_s"]
    lines += ["", f"8 concurrent single-image clients on {result['clients8_backend']}: unbatched {c['unbatched']:.0f} "
              f"images/s, BatchingSampler default (continuous) {c['batched']:.0f} "
              f"({c['batched'] / c['unbatched']:.2f}x), with a 2 ms wait {c['batched_2ms']:.0f} "
              f"({c['batched_2ms'] / c['unbatched']:.2f}x).",
              "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="GPU mode (needs a CUDA GPU)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both ORT and eager")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        if args.gpu:
            import torch

            from tgan_deploy.runtime.backends.tensorrt import tensorrt_usable

            ckpt, export_dir = reference_model(Path(tmp), fp16_engine=tensorrt_usable())
            info["gpu"] = torch.cuda.get_device_name(0)
            result, name, md = gpu_bench(ckpt, export_dir, args.rounds), "runtime-gpu", gpu_markdown
        else:
            ckpt, export_dir = reference_model(Path(tmp))
            result = cpu_bench(ckpt, export_dir, small_model(Path(tmp)), args.threads, args.rounds)
            name, md = "runtime-cpu", cpu_markdown
    write_results(args.out, name, {"machine": info, **result}, md(info, result))


def write_results(folder: Path, name: str, data: dict[str, Any], text: str) -> None:
    """folder/name.json and folder/name.md (atomic), and the table on stdout."""
    write_json_atomic(folder / f"{name}.json", data)
    write_text_atomic(folder / f"{name}.md", text)
    print(text)


if __name__ == "__main__":
    main()

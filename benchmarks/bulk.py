"""Bulk generation benchmark: images/s the bulk writer sustains against the raw Sampler throughput of the same
model, backend and threads measured in the same run, peak RSS of the real CLI at 10k and 100k images, and the
Ray Data path on a local cluster.

Model: the 64 px reference generator of benchmarks/runtime.py (random init: speed does not depend on weights).
  raw Sampler     sampler.sample(batch of 64 seeds) in a loop, nothing written (runs alternate with the
                  writers; each writer is compared with the raw runs on either side of it)
  bulk <format>   run_bulk into a fresh directory, in this process, same Sampler (inference in this thread,
                  encoding in the pool); images/s = N / wall time, part writes and fsyncs included
  peak RSS        `tgan-sample --out DIR` as a real subprocess, ru_maxrss of that child (getrusage RUSAGE_CHILDREN)
  ray             sample_dataset(...).materialize() on ray.init(num_cpus=2), one actor with 1 CPU reserved and
                  the same threads; includes actor start-up, not cluster start-up

    flock -x /tmp/tgan-cpu.lock .venv/bin/python benchmarks/bulk.py [--n 10000] [--rss-n 10000,100000]

Writes benchmarks/results/bulk-cpu.{json,md}. Measures; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from runtime import machine, reference_model  # noqa: E402

from tgan_deploy.io import write_json_atomic, write_text_atomic  # noqa: E402
from tgan_deploy.runtime import Sampler  # noqa: E402
from tgan_deploy.runtime.bulk import BulkOptions, SeedPlan, run_bulk  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"png": 0.75, "npy": 0.9}


def raw_images_per_s(sampler: Sampler, n: int) -> float:
    start = time.perf_counter()
    for first in range(0, n, sampler.max_batch):
        sampler.sample(range(first, min(first + sampler.max_batch, n)))
    return n / (time.perf_counter() - start)


def bulk_images_per_s(sampler: Sampler, export: Path, out: Path, image_format: str, n: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    plan = SeedPlan.from_options(n=n, seed=0, seeds=None, part_size=1000)
    start = time.perf_counter()
    run_bulk(sampler, export, plan, out, BulkOptions(image_format))
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return n / elapsed


def peak_rss_mib(export: Path, out: Path, image_format: str, n: int, threads: int) -> dict[str, float]:
    """Runs the CLI in a fresh wrapper process, so RUSAGE_CHILDREN's max RSS is this run's alone."""
    wrapper = ("import json, resource, subprocess, sys, time\n"
               "start = time.perf_counter()\n"
               "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
               "print(json.dumps({'wall_s': time.perf_counter() - start, "
               "'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    shutil.rmtree(out, ignore_errors=True)
    cli = [sys.executable, "-m", "tgan_deploy", "sample", str(export), "--n", str(n), "--format", image_format,
           "--threads", str(threads), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", wrapper, *cli], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    shutil.rmtree(out)
    report = json.loads(proc.stdout)
    return {"n": n, "format": image_format, "peak_rss_mib": report["rss_kib"] / 1024, "wall_s": report["wall_s"]}


def ray_images_per_s(export: Path, n: int, threads: int) -> dict[str, Any]:
    import ray

    from tgan_deploy.runtime.raydata import sample_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        start = time.perf_counter()
        count = sample_dataset(export, n=n, concurrency=1, num_cpus=1, threads=threads).materialize().count()
        elapsed = time.perf_counter() - start
    finally:
        ray.shutdown()
    assert count == n
    return {"n": n, "images_per_s": n / elapsed, "ray": ray.__version__}


def markdown(result: dict[str, Any]) -> str:
    info, raw = result["machine"], result["raw_images_per_s"]
    lines = [
        "# Bulk generation benchmark (CPU)", "",
        f"{info['date']}; {info['cpu']}, {info['cores']} cores (shared; load average at start "
        f"{info['load_average_at_start'][0]:.1f}); onnxruntime {info['onnxruntime']}.",
        f"64 px reference generator (random init), ONNX Runtime CPU, {result['threads']} threads, max_batch 64, "
        f"{result['n']} images per writer run, parts of 1000, encoder pool of min(4, cores) threads.",
        "Raw Sampler runs alternate with the writers (raw, writer 1, raw, writer 2, ..., raw); each writer's "
        "ratio is against the mean of the raw runs on either side of it. Raw runs (images/s): "
        + ", ".join(f"{r:.0f}" for r in result["raw_runs"]) + ".", "",
        "| path | images/s | vs raw Sampler | target |", "|---|---:|---:|---:|"]
    for fmt, ips in result["bulk_images_per_s"].items():
        target = f">= {TARGETS[fmt]}x" if fmt in TARGETS else ""
        lines.append(f"| bulk {fmt} | {ips:.0f} | {result['ratio_to_raw'][fmt]:.2f}x | {target} |")
    ray_row = result.get("ray")
    if ray_row:
        lines.append(f"| Ray Data, 1 actor on a 2-CPU local cluster ({ray_row['n']} images) | "
                     f"{ray_row['images_per_s']:.0f} | {ray_row['images_per_s'] / raw:.2f}x (vs mean raw) | |")
    lines += ["", "Peak RSS of `tgan-sample --out DIR` (a real subprocess; ru_maxrss):", "",
              "| format | images | peak RSS (MiB) | wall (s) |", "|---|---:|---:|---:|"]
    lines += [f"| {r['format']} | {r['n']:,} | {r['peak_rss_mib']:.0f} | {r['wall_s']:.1f} |" for r in result["rss"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6000, help="images per in-process writer run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default="png,npy,tar,jpeg,webp")
    parser.add_argument("--rss", default="png:10000,npy:10000,npy:100000", help="FORMAT:N runs of the CLI")
    parser.add_argument("--ray-n", type=int, default=3000, help="0: skip the Ray path")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results/")
    args = parser.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        _, export = reference_model(tmp)
        with Sampler.open(export, backend="onnxruntime", device="cpu", threads=args.threads) as sampler:
            raw_images_per_s(sampler, 640)  # warm-up
            # raw, fmt1, raw, fmt2, raw, ...: each writer against the mean of the raw runs on either side of it
            raw = [raw_images_per_s(sampler, args.n)]
            bulk = {}
            for fmt in args.formats.split(","):
                bulk[fmt] = bulk_images_per_s(sampler, export, tmp / "out", fmt, args.n)
                raw.append(raw_images_per_s(sampler, args.n))
        rss = [peak_rss_mib(export, tmp / "rss", fmt, int(n), args.threads)
               for fmt, n in (item.split(":") for item in args.rss.split(","))]
        ray_row = ray_images_per_s(export, args.ray_n, args.threads) if args.ray_n else None
    ratios = {fmt: ips / ((raw[i] + raw[i + 1]) / 2) for i, (fmt, ips) in enumerate(bulk.items())}
    result = {"machine": info, "n": args.n, "threads": args.threads, "raw_runs": raw,
              "raw_images_per_s": sum(raw) / len(raw), "bulk_images_per_s": bulk, "ratio_to_raw": ratios,
              "rss": rss, "ray": ray_row,
              "self_rusage_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    text = markdown(result)
    print(text)
    if not args.no_write:
        write_json_atomic(RESULTS / "bulk-cpu.json", result)
        write_text_atomic(RESULTS / "bulk-cpu.md", text)


if __name__ == "__main__":
    main()

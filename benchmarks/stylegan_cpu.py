"""StyleGAN2 and StyleGAN3-T on the CPU: ONNX Runtime on our exported generator.onnx against our torch model in eager
mode.

The model is StyleGAN2-ADA's paper256 configuration (channel_base 16384, channel_max 512, z = w = 512, 8 mapping
layers, 256 px, conv_clamp 256), with random weights built by our module (tgan_deploy/models/stylegan2.py): the
speed does not depend on the weights, so no file is needed. One process, one run: batch-1 latency (median of
--rounds single-image calls) and batch-8 throughput (median of --rounds calls), for both backends, after warm-up
calls, on the threads torch and ONNX Runtime would use by default (every core). Ratios are from this one run.

FLOP floor: 2 x the multiply-adds of the convolutions and dense layers, from the layer shapes (the up-sampling
convs counted at their input resolution, as a stride-2 transposed conv computes them; the FIR filters and
element-wise ops left out): ~30 GFLOP per image at paper256. "share of peak" divides the achieved FLOP/s by the
cores' fp32 peak, cores x clock (lscpu's max, else /proc/cpuinfo's) x 32 FLOP/cycle (two 256-bit FMA pipes),
an assumption written into the result.

StyleGAN3-T (issue 29) at the same resolution with the original's widths (NVlabs stylegan3 train.py
--cfg=stylegan3-t: channel_base 32768, channel_max 512, z = w = 512, 2 mapping layers, 14 layers, 3x3 convs),
timed the same way. Its FIR filters, which a real snapshot carries as buffers designed by scipy, are flat low-pass
taps of the right lengths here (speed depends on their lengths only). Its FLOP count is the convolutions at their
(padded) input size, the Fourier input's channel mix and the dense layers; the filtered leaky ReLU's up/down-sampling
filters are left out as the StyleGAN2 count leaves out its FIR filters, although at StyleGAN3's 2x-4x temporary
sampling rates they are a larger share of the work.

Run it alone on a quiet machine (other jobs distort timings 5-10x):

    PYTHONPATH=. OMP_NUM_THREADS= python benchmarks/stylegan_cpu.py
    PYTHONPATH=. python benchmarks/stylegan_cpu.py --resolution 16 --channel-max 16 --sg3-channel-base 256 \
        --sg3-channel-max 16 --rounds 1 --no-write  # check

Writes benchmarks/results/stylegan-cpu.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export.graphs import TruncatedGenerator
from tgan_deploy.io import write_json_atomic, write_text_atomic
from tgan_deploy.models.stylegan2 import StyleGAN2Generator, SynthesisLayer, ToRGBLayer, nvlabs_widths
from tgan_deploy.models.stylegan3 import AliasFreeLayer, StyleGAN3Generator
from tgan_deploy.models.stylegan_layers import FullyConnectedLayer
from tgan_deploy.runtime.bench import time_calls

RESULTS = Path(__file__).parent / "results"
# Issue 26's figures for NVlabs' original code in eager mode on a 2-core AVX2 machine (batch 1 s, batch 8 s) and its
# target for an export (>= 1.5x at batch 1, >= 3.5x at batch 8): another run, so indicative only.
ORIGINAL_EAGER_S = {1: 0.340, 8: 7.1}
TARGET_SPEEDUP = {1: 1.5, 8: 3.5}
FLOP_PER_CYCLE = 32  # fp32, two 256-bit FMA pipes per core (AVX2 Zen/Intel; Zen 4 runs AVX-512 as 2x256)


def flops_per_image(g: StyleGAN2Generator) -> float:
    """2 x multiply-adds of every conv / dense layer of one image, from the layer shapes."""
    macs = sum(fc.weight.numel() for fc in g.modules() if isinstance(fc, FullyConnectedLayer))  # mapping, affines
    for res, block in zip(g.synthesis.resolutions, g.synthesis.blocks(), strict=True):
        for layer in block.children():
            if isinstance(layer, SynthesisLayer):  # up: a stride-2 transposed conv over the input resolution
                macs += layer.weight.numel() * ((res // 2) ** 2 if layer.up else res**2)
            elif isinstance(layer, ToRGBLayer):
                macs += layer.weight.numel() * res**2
    return 2.0 * macs


STYLEGAN3_T = {"channel_base": 32768, "channel_max": 512, "num_layers": 14, "conv_kernel": 3}


def stylegan3_t(resolution: int, z_dim: int, channel_base: int, channel_max: int) -> StyleGAN3Generator:
    """A random-weight StyleGAN3-T (filters: flat low-pass taps, DC gain 1)."""
    generator = StyleGAN3Generator(z_dim=z_dim, w_dim=z_dim, resolution=resolution, channels=3, mapping_layers=2,
                                   synthesis={**STYLEGAN3_T, "channel_base": channel_base,
                                              "channel_max": channel_max}).eval()
    with torch.no_grad():
        for name, tensor in generator.state_dict(keep_vars=True).items():
            if name.endswith("_filter"):
                tensor.fill_(1.0 / tensor.shape[0])
            elif name.endswith(("weight", "freqs", "phases")):
                tensor.normal_()
    return generator


def stylegan3_flops_per_image(g: StyleGAN3Generator) -> float:
    """2 x multiply-adds of the convolutions (output size = input size + kernel - 1: NVlabs pads by kernel - 1),
    the Fourier input's channel mix and the dense layers, from the layer shapes."""
    macs = sum(fc.weight.numel() for fc in g.modules() if isinstance(fc, FullyConnectedLayer))
    macs += g.synthesis.input.weight.numel() * g.synthesis.input.size**2
    for layer in g.synthesis.modules():
        if isinstance(layer, AliasFreeLayer):
            geometry = layer.geometry
            macs += layer.weight.numel() * (geometry.in_size + geometry.conv_kernel - 1) ** 2
    return 2.0 * macs


def cpu_peak_gflops() -> tuple[float | None, str]:
    """cores x max MHz x FLOP_PER_CYCLE from lscpu, and lscpu's model line (None where lscpu says no clock)."""
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, "lscpu unavailable"
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    model = fields.get("Model name", "?")
    mhz = fields.get("CPU max MHz") or fields.get("CPU MHz") or _cpuinfo_mhz()
    cores = len(os.sched_getaffinity(0))
    if not mhz:
        return None, model
    return cores * float(mhz) * 1e6 * FLOP_PER_CYCLE / 1e9, model


def _cpuinfo_mhz() -> str | None:
    """The clock /proc/cpuinfo reports (virtual machines often hide lscpu's max MHz)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("cpu MHz")), None)


def timed(fn: Callable[[], Any], rounds: int) -> float:
    """Median seconds per call, after tgan-bench's warm-up calls."""
    return statistics.median(time_calls(fn, rounds))


def export(generator: nn.Module, folder: Path) -> Path:
    path = folder / "generator.onnx"
    model = TruncatedGenerator(onnx_mod.prepare_for_export(generator), 1.0).eval()
    onnx_mod.export_graph(model, path, {"z": torch.randn(onnx_mod.EXPORT_BATCH, generator.z_dim)}, "image")
    return path


def time_backends(generator: nn.Module, flops: float, z_dim: int, rounds: int,
                  batch: int = 8) -> dict[str, dict[str, float]]:
    """Batch-1 latency and batch-`batch` throughput (reported under the batch8 keys) of `generator` in eager torch
    and of its export in ONNX Runtime."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    z = {b: rng.standard_normal((b, z_dim)).astype(np.float32) for b in (1, batch)}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        session = ort.InferenceSession(str(export(generator, Path(tmp))), providers=["CPUExecutionProvider"])
        for name, run in {
            "torch eager": lambda b: generator(torch.from_numpy(z[b])),
            "onnxruntime": lambda b: session.run(None, {"z": z[b]}),
        }.items():
            with torch.inference_mode():
                latency = timed(lambda r=run: r(1), rounds)  # type: ignore[misc]
                batch8 = timed(lambda r=run: r(batch), max(1, rounds // 2))  # type: ignore[misc]
            results[name] = {"batch1_ms": latency * 1e3, "batch8_s": batch8, "batch8_images_per_s": batch / batch8,
                             "batch1_gflops": flops / latency / 1e9, "batch8_gflops": batch * flops / batch8 / 1e9,
                             "throughput_batch": batch}
            print(f"{type(generator).__name__}, {name}: {results[name]}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--channel-base", type=int, default=16384)
    parser.add_argument("--channel-max", type=int, default=512)
    parser.add_argument("--z-dim", type=int, default=512)
    parser.add_argument("--mapping-layers", type=int, default=8)
    parser.add_argument("--sg3-channel-base", type=int, default=STYLEGAN3_T["channel_base"])
    parser.add_argument("--sg3-channel-max", type=int, default=STYLEGAN3_T["channel_max"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print only (the tiny check run)")
    parser.add_argument("--sg3-batch", type=int, default=8,
                        help="StyleGAN3-T's throughput batch (its up-sampled activations are large on a CPU)")
    parser.add_argument("--skip-stylegan3", action="store_true",
                        help="StyleGAN2 only (StyleGAN3-T at 256 px with the original widths ran out of this "
                             "machine's 24 GB in one attempt)")
    args = parser.parse_args()
    import onnxruntime as ort

    torch.manual_seed(0)
    widths = nvlabs_widths(args.resolution, args.channel_base, args.channel_max)
    generator = StyleGAN2Generator(z_dim=args.z_dim, w_dim=args.z_dim, resolution=args.resolution, channels=3,
                                   widths=widths, mapping_layers=args.mapping_layers, conv_clamp=256).eval()
    flops = flops_per_image(generator)
    results = time_backends(generator, flops, args.z_dim, args.rounds)
    sg3 = None if args.skip_stylegan3 else stylegan3_t(args.resolution, args.z_dim, args.sg3_channel_base,
                                                        args.sg3_channel_max)
    sg3_flops = 0.0 if sg3 is None else stylegan3_flops_per_image(sg3)
    sg3_results = {} if sg3 is None else time_backends(sg3, sg3_flops, args.z_dim, args.rounds, args.sg3_batch)
    peak, cpu = cpu_peak_gflops()
    for r in [*results.values(), *sg3_results.values()]:
        r["batch1_share_of_peak"] = r["batch1_gflops"] / peak if peak else float("nan")
        r["batch8_share_of_peak"] = r["batch8_gflops"] / peak if peak else float("nan")
    ratios = {"onnxruntime_vs_eager_batch1": results["torch eager"]["batch1_ms"] / results["onnxruntime"]["batch1_ms"],
              "onnxruntime_vs_eager_batch8": results["torch eager"]["batch8_s"] / results["onnxruntime"]["batch8_s"]}
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "torch": torch.__version__, "onnxruntime": ort.__version__,
                          "peak_gflops_assumed": peak, "flop_per_cycle_assumed": FLOP_PER_CYCLE},
              "model": {"resolution": args.resolution, "channel_base": args.channel_base,
                        "channel_max": args.channel_max, "z_dim": args.z_dim, "mapping_layers": args.mapping_layers,
                        "widths": widths, "gflop_per_image": flops / 1e9},
              "rounds": args.rounds, "results": results, "ratios": ratios}
    if sg3 is not None:
        record["stylegan3_t"] = {"model": {"resolution": args.resolution, "channel_base": args.sg3_channel_base,
                                        "channel_max": args.sg3_channel_max, "z_dim": args.z_dim, "mapping_layers": 2,
                                        "layers": sg3.synthesis.layer_names, "gflop_per_image": sg3_flops / 1e9},
                              "results": sg3_results, "ratios": {
                                  "onnxruntime_vs_eager_batch1": sg3_results["torch eager"]["batch1_ms"]
                                  / sg3_results["onnxruntime"]["batch1_ms"],
                                  "onnxruntime_vs_eager_batch8": sg3_results["torch eager"]["batch8_s"]
                                  / sg3_results["onnxruntime"]["batch8_s"]}}
    lines = [f"# StyleGAN2 paper256 on the CPU ({record['date']})", "",
             f"{cpu}, {record['machine']['cores']} cores; torch {torch.__version__} eager vs ONNX Runtime "
             f"{ort.__version__} on our generator.onnx; {flops / 1e9:.1f} GFLOP per image (from the layer shapes); "
             f"peak assumed {peak or float('nan'):.0f} GFLOP/s (cores x max clock x {FLOP_PER_CYCLE}).", "",
             "| backend | batch 1 (ms) | batch 8 (s) | images/s at 8 | share of peak at 1 | share of peak at 8 |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['batch1_ms']:.0f} | {r['batch8_s']:.2f} | {r['batch8_images_per_s']:.2f} | "
                     f"{r['batch1_share_of_peak']:.0%} | {r['batch8_share_of_peak']:.0%} |")
    ort_s = {1: results["onnxruntime"]["batch1_ms"] / 1e3, 8: results["onnxruntime"]["batch8_s"]}
    lines += ["", f"ONNX Runtime / our eager: {ratios['onnxruntime_vs_eager_batch1']:.2f}x at batch 1, "
              f"{ratios['onnxruntime_vs_eager_batch8']:.2f}x at batch 8 (ratios from this one run).", "",
              "Against issue 26's figures for the original code in eager mode (another run: indicative only): "
              + ", ".join(f"batch {b}: {ORIGINAL_EAGER_S[b] / ort_s[b]:.2f}x (target {TARGET_SPEEDUP[b]}x)"
                          for b in (1, 8)) + ".", ""]
    if sg3 is not None:
        lines += stylegan3_lines(args, sg3, sg3_flops, sg3_results, record["stylegan3_t"]["ratios"])
    record["vs_issue_original_eager"] = {str(b): ORIGINAL_EAGER_S[b] / ort_s[b] for b in (1, 8)}
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        write_json_atomic(RESULTS / "stylegan-cpu.json", record)
        write_text_atomic(RESULTS / "stylegan-cpu.md", text)


def stylegan3_lines(args: argparse.Namespace, sg3: nn.Module, sg3_flops: float,
                    sg3_results: dict[str, dict[str, float]], sg3_ratios: dict[str, float]) -> list[str]:
    lines = [f"## StyleGAN3-T, {args.resolution} px (channel_base {args.sg3_channel_base}, channel_max "
              f"{args.sg3_channel_max}, 2 mapping layers): {sg3_flops / 1e9:.1f} GFLOP per image (convolutions, "
              "input and dense layers; the filtered leaky ReLU's FIR filters not counted)", "",
              f"| backend | batch 1 (ms) | batch {args.sg3_batch} (s) | images/s at {args.sg3_batch} "
              f"| share of peak at 1 | share of peak at {args.sg3_batch} |",
              "|---|---|---|---|---|---|"]
    for name, r in sg3_results.items():
        lines.append(f"| {name} | {r['batch1_ms']:.0f} | {r['batch8_s']:.2f} | {r['batch8_images_per_s']:.2f} | "
                     f"{r['batch1_share_of_peak']:.0%} | {r['batch8_share_of_peak']:.0%} |")
    return [*lines, "", f"ONNX Runtime / our eager: {sg3_ratios['onnxruntime_vs_eager_batch1']:.2f}x at batch 1, "
            f"{sg3_ratios['onnxruntime_vs_eager_batch8']:.2f}x at batch {args.sg3_batch} (ratios from this one run).",
            ""]


if __name__ == "__main__":
    main()

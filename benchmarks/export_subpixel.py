"""Would an exact export-time rewrite of the generator's ConvTranspose2d layers speed up ONNX Runtime on CPU?

The generator's upsampling layers are ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1). Two
mathematically exact rewrites into stride-1 convolutions are measured against the unmodified graph:

  subpixel  Conv2d(in, 4*out, 3x3, padding 1) -> PixelShuffle(2) (ONNX DepthToSpace): sub-pixel
            convolution (Shi et al. 2016, arXiv:1609.05158). 36 multiply-adds per output pixel and input
            channel instead of the transposed conv's 25 (odd output rows/columns see a zero tap).
  phase     one Conv2d per output phase with only its own taps (3x3, 3x2, 2x3, 2x2: 25 in all) on one
            padded input, stacked -> PixelShuffle(2): the same arithmetic as the transposed conv.

Derivation (both): a transposed conv with stride s, padding p, kernel K writes input pixel i to output
o = s*i - p + k. For output phase o = s*m + r the taps are the k = r + p (mod s), reading input
i = m + d, d = (r + p - k) / s. For K=5, s=2, p=2: even rows use k = 4, 2, 0 at d = -1, 0, 1, odd rows
k = 3, 1 at d = 0, 1; so each phase is a stride-1 correlation over d in [-1, 1] (pad 1), and conv output
channel co*4 + ry*2 + rx holds phase (ry, rx) of channel co, which is PixelShuffle(2)'s layout. The
transposed conv weight is [in, out, K, K], so the conv weight is w[:, :, ky, kx] transposed to [out, in].

Every rewrite is checked exact (max abs <= 1e-5 vs the original in float32, random layers and random-init
32/64 px generators at several batch sizes) before anything is timed. Then, on the 64 px reference
generator (base_channels 64, latent 100), each graph is exported with tgan_deploy.export.onnx (the real
exporter) and run on ONNX Runtime CPU with the runtime's session options, beside PyTorch eager, in
interleaved rounds (medians). Each ONNX file is also built by TensorRT-RTX when it is installed.

    PYTHONPATH=. python benchmarks/export_subpixel.py [--rounds 7] [--threads 2]

Writes benchmarks/results/export-subpixel-cpu.{json,md}. Measures; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in runtime.py: no spinning contender

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runtime import interleaved, machine, median_ms  # noqa: E402

from tgan_deploy.config import ModelConfig  # noqa: E402
from tgan_deploy.export import onnx as onnx_mod  # noqa: E402
from tgan_deploy.io import write_json_atomic, write_text_atomic  # noqa: E402
from tgan_deploy.models import build_generator  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TOLERANCE = 1e-5


def phase_taps(stride: int, padding: int, kernel: int) -> dict[int, list[tuple[int, int]]]:
    """Phase r -> [(input offset d, kernel tap k)] in increasing d: the taps with k = r + p (mod s)."""
    return {r: sorted(((r + padding - k) // stride, k) for k in range(kernel) if (r + padding - k) % stride == 0)
            for r in range(stride)}


def _geometry(deconv: nn.ConvTranspose2d) -> tuple[int, int, int]:
    s, k, p = deconv.stride[0], deconv.kernel_size[0], deconv.padding[0]
    square = deconv.stride == (s, s) and deconv.kernel_size == (k, k) and deconv.padding == (p, p)
    if not square or deconv.groups != 1 or deconv.dilation != (1, 1) or k + deconv.output_padding[0] - 2 * p != s:
        raise ValueError(f"{deconv} is not a square 'same' transposed conv with output = stride * input")
    return s, k, p


class SubPixelConv(nn.Sequential):
    """Conv2d(in, out*s*s, T, padding) -> PixelShuffle(s), T covering every phase's offsets (3 for K=5, s=2)."""

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        s, k, p = _geometry(deconv)
        taps = phase_taps(s, p, k)
        lo = min(d for t in taps.values() for d, _ in t)
        hi = max(d for t in taps.values() for d, _ in t)
        if -lo != hi:
            raise ValueError("asymmetric offsets: this benchmark handles symmetric padding only")
        w = deconv.weight.detach()  # [in, out, K, K]
        weight = w.new_zeros(deconv.out_channels, s, s, deconv.in_channels, hi - lo + 1, hi - lo + 1)
        for ry in range(s):
            for rx in range(s):
                for dy, ky in taps[ry]:
                    for dx, kx in taps[rx]:
                        weight[:, ry, rx, :, dy - lo, dx - lo] = w[:, :, ky, kx].t()
        conv = nn.Conv2d(deconv.in_channels, deconv.out_channels * s * s, hi - lo + 1, padding=hi,
                         bias=deconv.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(weight.flatten(0, 2))
            if deconv.bias is not None:
                conv.bias.copy_(deconv.bias.detach().repeat_interleave(s * s))  # channel co*s*s + phase
        super().__init__(conv, nn.PixelShuffle(s))


class PhaseConv(nn.Module):
    """One Conv2d per output phase with only that phase's taps, on one padded input; stacked -> PixelShuffle."""

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        s, k, p = _geometry(deconv)
        taps = phase_taps(s, p, k)
        self.lo = min(d for t in taps.values() for d, _ in t)
        self.hi = max(d for t in taps.values() for d, _ in t)
        w = deconv.weight.detach()
        self.convs = nn.ModuleList()
        self.starts: list[tuple[int, int]] = []  # where each phase's window starts in the padded input
        for ry in range(s):
            for rx in range(s):
                ky = torch.tensor([kk for _, kk in taps[ry]])
                kx = torch.tensor([kk for _, kk in taps[rx]])
                conv = nn.Conv2d(deconv.in_channels, deconv.out_channels, (len(ky), len(kx)),
                                 bias=deconv.bias is not None)
                with torch.no_grad():
                    conv.weight.copy_(w[:, :, ky][:, :, :, kx].transpose(0, 1))
                    if deconv.bias is not None:
                        conv.bias.copy_(deconv.bias.detach())
                self.convs.append(conv)
                self.starts.append((taps[ry][0][0] - self.lo, taps[rx][0][0] - self.lo))
        self.shuffle = nn.PixelShuffle(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (-self.lo, self.hi, -self.lo, self.hi))
        phases = []
        for conv, (y0, x0) in zip(self.convs, self.starts, strict=True):
            th, tw = conv.kernel_size
            phases.append(conv(padded[:, :, y0:y0 + h + th - 1, x0:x0 + w + tw - 1]))
        return self.shuffle(torch.stack(phases, 2).flatten(1, 2))


REWRITES: dict[str, Callable[[nn.ConvTranspose2d], nn.Module]] = {"subpixel": SubPixelConv, "phase": PhaseConv}


def rewritten(model: nn.Module, rewrite: Callable[[nn.ConvTranspose2d], nn.Module]) -> nn.Module:
    """The model (an eval() copy from prepare_for_export) with every ConvTranspose2d replaced, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ConvTranspose2d):
                setattr(parent, name, rewrite(child).eval())
    return model


def generator(resolution: int, base: int = 64, seed: int = 0) -> nn.Module:
    """Random-init reference generator, BatchNorm statistics moved off (0, 1) so eval() BN is not an identity."""
    torch.manual_seed(seed)
    g = build_generator(ModelConfig(arch="dcgan", resolution=resolution, channels=3, latent_dim=100,
                                    base_channels=base))
    for m in g.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return onnx_mod.prepare_for_export(g)


def exactness() -> dict[str, float]:
    """Max abs difference rewrite vs original (float32), per case; raises if any exceeds TOLERANCE."""
    out: dict[str, float] = {}
    torch.manual_seed(1)
    with torch.no_grad():
        for c_in, c_out, size in ((3, 5, 5), (16, 8, 4), (64, 3, 7)):
            deconv = nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)
            for name, rewrite in REWRITES.items():
                for batch in (1, 3, 8):
                    x = torch.randn(batch, c_in, size, size + 1)
                    out[f"layer {c_in}->{c_out} {size}x{size + 1} batch {batch} {name}"] = float(
                        (deconv(x) - rewrite(deconv)(x)).abs().max())
        for resolution, batches in ((32, (1, 7, 64)), (64, (1, 7, 16))):
            g = generator(resolution)
            for name, rewrite in REWRITES.items():
                r = rewritten(generator(resolution), rewrite)
                for batch in batches:
                    z = torch.randn(batch, 100)
                    out[f"generator {resolution} px batch {batch} {name}"] = float((g(z) - r(z)).abs().max())
    worst = max(out, key=lambda k: out[k])
    if out[worst] > TOLERANCE:
        raise AssertionError(f"rewrite is not exact: {worst}: {out[worst]:.2e} > {TOLERANCE}")
    return out


def ort_session(path: Path, threads: int) -> Any:
    """The runtime's CPU session options (tgan_deploy/runtime/backends/onnxruntime.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def rtx_build(path: Path, out: Path) -> dict[str, Any]:
    from tgan_deploy.export import tensorrt as trt_mod

    try:
        build = trt_mod.build_engine(path, out, path.stem, target="tensorrt-rtx", batch_profile=(1, 16, 64),
                                     latent_dim=100)
    except trt_mod.EngineUnavailable as exc:
        return {"built": None, "note": str(exc)}
    except trt_mod.EngineBuildError as exc:
        return {"built": False, "note": str(exc)}
    return {"built": True, "seconds": build.seconds, "mib": build.size_bytes / 2**20}


def bench(threads: int, rounds: int, tmp: Path) -> dict[str, Any]:
    torch.set_num_threads(threads)
    models = {"convtranspose": generator(64)}
    models.update({name: rewritten(generator(64), rw) for name, rw in REWRITES.items()})
    eager = generator(64)
    sessions, ops, rtx = {}, {}, {}
    import onnx

    for name, model in models.items():
        path = tmp / f"{name}.onnx"
        onnx_mod.export_onnx(model, path, 100, "image")
        ops[name] = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        sessions[name] = ort_session(path, threads)
        rtx[name] = rtx_build(path, tmp)
    z = {b: np.random.default_rng(b).standard_normal((b, 100)).astype(np.float32) for b in (1, 64)}
    with torch.no_grad():
        reference = eager(torch.from_numpy(z[64])).numpy()
    parity = {n: float(np.abs(s.run(None, {"z": z[64]})[0] - reference).max()) for n, s in sessions.items()}

    def contenders(batch: int, calls: int) -> dict[str, Callable[[], float]]:
        out: dict[str, Callable[[], float]] = {
            f"ort_{n}": (lambda s=s: median_ms(lambda: s.run(None, {"z": z[batch]}), calls))
            for n, s in sessions.items()}
        zt = torch.from_numpy(z[batch])

        def eager_ms() -> float:
            with torch.no_grad():
                return median_ms(lambda: eager(zt), calls)

        out["torch_eager"] = eager_ms
        return out

    per_round = {"batch1_latency_ms": interleaved(contenders(1, 20), rounds),
                 "batch64_ms": interleaved(contenders(64, 3), rounds)}
    med = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in per_round.items()}
    return {"threads": threads, "rounds": rounds, "onnx_ops": ops, "parity_max_abs_ort_vs_eager_batch64": parity,
            "tensorrt_rtx_build": rtx, "per_round": per_round, "medians": med}


def markdown(info: dict[str, Any], exact: dict[str, float], result: dict[str, Any]) -> str:
    m = result["medians"]
    lat, b64 = m["batch1_latency_ms"], m["batch64_ms"]
    base_lat, base_b64 = lat["ort_convtranspose"], b64["ort_convtranspose"]
    lines = [
        "# Export-time sub-pixel rewrite of ConvTranspose2d: ONNX Runtime CPU",
        "",
        f"{info['date']}; {info['cpu']}, {info['cores']} cores (shared with other jobs; load average at start "
        f"{info['load_average_at_start'][0]:.1f}); torch {info['torch']}, onnxruntime {info['onnxruntime']}.",
        f"64 px reference generator (base_channels 64, latent 100, random init), {result['threads']} threads, "
        f"medians of {result['rounds']} interleaved rounds (batch 1: median of 20 calls per round; batch 64: "
        "of 3). Speed-up = ORT ConvTranspose time / this row's time (> 1: faster than the unmodified graph).",
        "",
        "| graph | batch-1 latency (ms) | speed-up | batch-64 (ms) | images/s | speed-up | vs eager at 64 |"
        " max abs vs eager | TensorRT-RTX build |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in [*result["onnx_ops"], "eager"]:
        key = f"ort_{name}" if name != "eager" else "torch_eager"
        rtx = result["tensorrt_rtx_build"].get(name)
        built = "" if rtx is None else {True: "built", False: "FAILED", None: "not available"}[rtx["built"]]
        parity = result["parity_max_abs_ort_vs_eager_batch64"].get(name)
        lines.append(
            f"| {'PyTorch eager (ConvTranspose)' if name == 'eager' else 'ORT ' + name} | {lat[key]:.2f} | "
            f"{base_lat / lat[key]:.2f}x | {b64[key]:.0f} | {64000 / b64[key]:.0f} | {base_b64 / b64[key]:.2f}x | "
            f"{b64['torch_eager'] / b64[key]:.2f}x | {'' if parity is None else f'{parity:.1e}'} | {built} |")
    per_round = ((1, result["per_round"]["batch1_latency_ms"]), (64, result["per_round"]["batch64_ms"]))
    wins = [f"{n}: {sum(a < b for a, b in zip(rounds['ort_convtranspose'], rounds[f'ort_{n}'], strict=True))}"
            f"/{len(rounds['ort_convtranspose'])} at batch {batch}" for batch, rounds in per_round for n in REWRITES]
    ops = "; ".join(f"{n}: {', '.join(o)}" for n, o in result["onnx_ops"].items())
    lines += ["", "Rounds in which the unmodified ConvTranspose graph was faster than the rewrite: " + "; ".join(wins)
              + ".", "", "ONNX ops per graph: " + ops,
              "", f"Exactness before timing (float32, max abs rewrite vs original over {len(exact)} cases: random "
              f"layers and random-init 32/64 px generators at batch 1-64): worst {max(exact.values()):.1e} "
              f"(tolerance {TOLERANCE:.0e}).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for ORT and eager")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    exact = exactness()
    with tempfile.TemporaryDirectory() as tmp:
        result = bench(args.threads, args.rounds, Path(tmp))
    write_json_atomic(args.out / "export-subpixel-cpu.json", {"machine": info, "exactness_max_abs": exact, **result})
    text = markdown(info, exact, result)
    write_text_atomic(args.out / "export-subpixel-cpu.md", text)
    print(text)


if __name__ == "__main__":
    main()

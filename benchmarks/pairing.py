"""Fused pair-score op vs the naive materialised PyTorch computation, all-pairs, forward + backward.

    python benchmarks/pairing.py                 # CPU: B in {64, 128, 256, 512}, d = H = 512
    python benchmarks/pairing.py --device cuda   # GPU: B in {256, 512, 1024, 2048}, plus the op's floor

One timed step is T-GAN's critic head on all B x B pairs as training runs it: A = E_r W1^T, C = E_f W1^T
(d = H = 512), the pair scores, the T-SGAN critic loss, and backward to E_r, E_f, W1, b1, w2.
- fused: tgan_deploy.ops.pair_scores(impl="cpu" | "cuda"): no [B*B, H] tensor in forward or backward.
- naive: delta = A[:, None] - C[None] as a [B*B, H] tensor, then LeakyReLU and w2 in each direction.
Time: median of interleaved runs (fused, naive, fused, naive, ...) after one warm-up each, same thread count.
Peak memory: one fresh subprocess per (size, impl). CPU: the process's resident-set high-water mark
(VmHWM, reset through /proc/self/clear_refs after the inputs exist and a warm-up ran) minus the resident set
at that moment; this counts every allocator (torch's CPU allocator is invisible to torch.cuda). CUDA:
torch.cuda.max_memory_allocated minus the allocation before the step.
GPU mode also times the op alone (A, C given) with CUDA events and compares it with its floor: the larger
of FLOPs / measured FP32 rate (an FP32 matmul with TF32 off) and bytes / measured copy bandwidth.
Results: benchmarks/results/pairing-{cpu,cuda}.json and .md (date, machine; the JSON holds every run).
Benchmarks measure; they never pass or fail on time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.functional import leaky_relu, softplus

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tgan_deploy.io import write_json_atomic, write_text_atomic  # noqa: E402
from tgan_deploy.ops import pair_scores  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SLOPE = 0.3
# Useful FLOPs per (pair, hidden unit), pairing.h: forward d, h+, h- (3), phi as h*phi' (2), w2 * phi (2 FMA = 4);
# backward d, h+, h- (3), u+/- (2), diff and both (2), act (3), three running sums (3).
FWD_FLOPS = 9
BWD_FLOPS = 13


def _inputs(batch: int, dim: int, hidden: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tensors = {"e_r": torch.randn(batch, dim, generator=g), "e_f": torch.randn(batch, dim, generator=g),
               "w1": torch.randn(hidden, dim, generator=g) / dim ** 0.5, "b1": torch.randn(hidden, generator=g) * 0.1,
               "w2": torch.randn(hidden, generator=g) / hidden ** 0.5}
    return {k: v.to(device).requires_grad_() for k, v in tensors.items()}


def _naive_scores(a: torch.Tensor, c: torch.Tensor, b1: torch.Tensor,
                  w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    delta = (a[:, None, :] - c[None, :, :]).flatten(0, 1)  # [B*B, H], pair (i, j) at i * B + j
    return leaky_relu(delta + b1, SLOPE) @ w2, leaky_relu(b1 - delta, SLOPE) @ w2


def head_step(impl: str, x: dict[str, torch.Tensor]) -> None:
    """Forward + backward of the pair head on all pairs with the T-SGAN critic loss."""
    for t in x.values():
        t.grad = None
    a, c = x["e_r"] @ x["w1"].t(), x["e_f"] @ x["w1"].t()
    if impl == "naive":
        s_pos, s_neg = _naive_scores(a, c, x["b1"], x["w2"])
    else:
        s_pos, s_neg = pair_scores(a, c, x["b1"], x["w2"], pairs="all", negative_slope=SLOPE, impl=impl)
    (softplus(-s_pos).mean() + softplus(s_neg).mean()).backward()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_interleaved(fns: dict[str, Callable[[], None]], reps: int, device: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up: extension load, allocator growth
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def index_rows(device: str, reps: int = 41) -> list[dict[str, object]]:
    """Index pairing (P = B), op alone: where the fused call's fixed cost matters (the "auto" rule)."""
    rows: list[dict[str, object]] = []
    for batch, hidden in ((16, 64), (64, 64), (64, 512), (128, 512), (256, 512), (1024, 512)):
        g = torch.Generator().manual_seed(2)
        a, c = (torch.randn(batch, hidden, generator=g).to(device).requires_grad_() for _ in range(2))
        b1, w2 = (torch.randn(hidden, generator=g).to(device).requires_grad_() for _ in range(2))

        def step(impl: str, a: torch.Tensor = a, c: torch.Tensor = c, b1: torch.Tensor = b1,
                 w2: torch.Tensor = w2) -> None:
            s_pos, s_neg = pair_scores(a, c, b1, w2, pairs="index", negative_slope=SLOPE, impl=impl)
            (s_pos.sum() + s_neg.sum()).backward()

        times = time_interleaved({device: lambda: step(device), "ref": lambda: step("ref")}, reps, device)
        fused_ms, ref_ms = (1e3 * statistics.median(times[k]) for k in (device, "ref"))
        rows.append({"B": batch, "H": hidden, "work": batch * hidden, "fused_ms": fused_ms, "ref_ms": ref_ms})
    return rows


# ---------------------------------------------------------------- peak memory, one fresh process per config

def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(impl: str, batch: int, dim: int, hidden: int, device: str) -> int:
    """Peak extra bytes of one head_step (runs inside the fresh subprocess)."""
    head_step(impl, _inputs(4, dim, hidden, device))  # warm-up at a tiny size: extension and allocators ready
    x = _inputs(batch, dim, hidden, device)
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        head_step(impl, x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    base = _status_kb("VmRSS")
    head_step(impl, x)
    return (_status_kb("VmHWM") - base) * 1024


def measure_memory(impl: str, batch: int, args: argparse.Namespace) -> int | None:
    cmd = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads), "--dim", str(args.dim),
           "--hidden", str(args.hidden), "--memory-probe", impl, str(batch)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode != 0:
        print(f"  memory probe {impl} B={batch} failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"])


# ---------------------------------------------------------------- GPU floor

def gpu_rates() -> dict[str, float]:
    """Measured FP32 FLOP rate (matmul, TF32 off) and device-memory copy bandwidth."""
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    x, y = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    src = torch.empty(1 << 28, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    t = time_interleaved({"mm": lambda: torch.mm(x, y), "copy": lambda: dst.copy_(src)}, 10, "cuda")
    return {"fp32_flops_per_s": 2 * n ** 3 / statistics.median(t["mm"]),
            "bytes_per_s": 2 * src.numel() * 4 / statistics.median(t["copy"])}


def op_only_cuda_ms(batch: int, hidden: int, reps: int) -> float:
    """Median of the fused op alone (forward + backward from given g+, g-), timed with CUDA events."""
    g = torch.Generator().manual_seed(1)
    a, c = (torch.randn(batch, hidden, generator=g).cuda().requires_grad_() for _ in range(2))
    b1, w2 = (torch.randn(hidden, generator=g).cuda().requires_grad_() for _ in range(2))
    g_pos, g_neg = (torch.randn(batch * batch, device="cuda") for _ in range(2))

    def step() -> None:
        s_pos, s_neg = pair_scores(a, c, b1, w2, pairs="all", negative_slope=SLOPE, impl="cuda")
        torch.autograd.backward((s_pos, s_neg), (g_pos, g_neg))

    step()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def op_floor_ms(batch: int, hidden: int, rates: dict[str, float]) -> dict[str, float]:
    pairs_units = batch * batch * hidden
    flops = pairs_units * (FWD_FLOPS + BWD_FLOPS)
    # forward reads A, C and writes s+, s-; backward reads A, C, g+, g- and writes dA, dC (float32)
    nbytes = 4 * (2 * 2 * batch * hidden + 2 * batch * batch + 2 * batch * batch + 2 * batch * hidden)
    compute_ms = 1e3 * flops / rates["fp32_flops_per_s"]
    memory_ms = 1e3 * nbytes / rates["bytes_per_s"]
    return {"flops": flops, "bytes": nbytes, "compute_floor_ms": compute_ms, "memory_floor_ms": memory_ms,
            "floor_ms": max(compute_ms, memory_ms)}


# ---------------------------------------------------------------- main

def _machine(device: str) -> dict[str, object]:
    info: dict[str, object] = {"platform": platform.platform(), "python": platform.python_version(),
                               "torch": torch.__version__, "cpu_count": os.cpu_count()}
    try:
        info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                           if ln.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def _fmt_mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2 ** 20:,.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="batch sizes B (B_r = B_f = B); default 64 128 256 512 (cpu), 256 512 1024 2048 (cuda)")
    parser.add_argument("--dim", type=int, default=512, help="feature size d of E(x)")
    parser.add_argument("--hidden", type=int, default=512, help="hidden units H of the pair head")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads, the same for both impls (default 1: stable on a shared machine)")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed runs per impl (default: 5, and 3 for B >= 512 on the CPU)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. 'machine shared')")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--memory-probe", nargs=2, metavar=("IMPL", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        impl, batch = args.memory_probe[0], int(args.memory_probe[1])
        print(json.dumps({"peak_bytes": memory_probe(impl, batch, args.dim, args.hidden, args.device)}))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda needs a CUDA GPU", file=sys.stderr)
        return 2
    sizes = args.sizes or ([64, 128, 256, 512] if args.device == "cpu" else [256, 512, 1024, 2048])
    fused = args.device  # impl name of the fused kernel
    rows = []
    rates = gpu_rates() if args.device == "cuda" else None
    for batch in sizes:
        reps = args.reps or (3 if args.device == "cpu" and batch >= 512 else 5)
        x = _inputs(batch, args.dim, args.hidden, args.device)
        fns: dict[str, Callable[[], None]] = {fused: lambda x=x: head_step(fused, x),
                                              "naive": lambda x=x: head_step("naive", x)}
        try:
            times = time_interleaved(fns, reps, args.device)
        except torch.cuda.OutOfMemoryError:  # the naive computation at large B on the GPU
            torch.cuda.empty_cache()
            times = time_interleaved({fused: fns[fused]}, reps, args.device)
            times["naive"] = []
        del x, fns
        gc.collect()
        row: dict[str, object] = {"B": batch, "pairs": batch * batch, "reps": reps,
                                  "fused_s": times[fused], "naive_s": times["naive"],
                                  "fused_ms": 1e3 * statistics.median(times[fused]),
                                  "naive_ms": 1e3 * statistics.median(times["naive"]) if times["naive"] else None}
        row["speedup"] = row["naive_ms"] / row["fused_ms"] if row["naive_ms"] else None  # type: ignore[operator]
        row["fused_peak_bytes"] = measure_memory(fused, batch, args)
        row["naive_peak_bytes"] = measure_memory("naive", batch, args)
        if row["fused_peak_bytes"] and row["naive_peak_bytes"]:
            row["memory_ratio"] = row["naive_peak_bytes"] / row["fused_peak_bytes"]  # type: ignore[operator]
        if rates is not None:
            row["op_only_ms"] = op_only_cuda_ms(batch, args.hidden, max(reps, 10))
            row.update(op_floor_ms(batch, args.hidden, rates))
            row["op_vs_floor"] = row["op_only_ms"] / row["floor_ms"]  # type: ignore[operator]
        rows.append(row)
        print(f"B={batch}: fused {row['fused_ms']:.1f} ms, naive {row['naive_ms'] or float('nan'):.1f} ms, "
              f"peak {_fmt_mb(row['fused_peak_bytes'])} vs {_fmt_mb(row['naive_peak_bytes'])} MiB", flush=True)  # type: ignore[arg-type]

    small = index_rows(args.device)
    result = {"benchmark": "pairing", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "device": args.device, "machine": _machine(args.device), "threads": args.threads, "dim": args.dim,
              "hidden": args.hidden, "negative_slope": SLOPE, "note": args.note, "rates": rates, "rows": rows,
              "index_rows": small}
    write_results(args.out / f"pairing-{args.device}.json", result, to_markdown(result))
    return 0


def write_results(out_json: Path, result: dict[str, object], markdown: str) -> None:
    """The JSON (every run) and its Markdown table beside it, each written atomically."""
    write_json_atomic(out_json, result)
    write_text_atomic(out_json.with_suffix(".md"), markdown)
    print(f"wrote {out_json} and {out_json.with_suffix('.md')}")


def to_markdown(result: dict) -> str:  # type: ignore[type-arg]
    m = result["machine"]
    where = m.get("gpu") or m["cpu"]
    lines = [f"# Fused pair-score op vs naive materialised all-pairs ({result['device']})", "",
             f"{result['date']}; {where}; torch {m['torch']}; {result['threads']} CPU threads; "
             f"d = {result['dim']}, H = {result['hidden']}. {result['note']}".rstrip(), "",
             "Forward + backward of the pair head on all B x B pairs (T-SGAN critic loss), median of interleaved "
             "runs; peak = extra memory of one step in a fresh process (method: benchmarks/pairing.py).", ""]
    head = "| B | pairs | fused ms | naive ms | speed-up | fused peak MiB | naive peak MiB | memory ratio |"
    sep = "|---|---|---|---|---|---|---|---|"
    if result["device"] == "cuda":
        head += " op only ms | op floor ms | op / floor |"
        sep += "---|---|---|"
    lines += [head, sep]
    for r in result["rows"]:
        naive = f"{r['naive_ms']:.1f}" if r["naive_ms"] else "OOM"
        speed = f"{r['speedup']:.1f}x" if r["speedup"] else "n/a"
        ratio = f"{r['memory_ratio']:.0f}x" if r.get("memory_ratio") else "n/a"
        line = (f"| {r['B']} | {r['pairs']:,} | {r['fused_ms']:.1f} | {naive} | {speed} | "
                f"{_fmt_mb(r['fused_peak_bytes'])} | {_fmt_mb(r['naive_peak_bytes'])} | {ratio} |")
        if result["device"] == "cuda":
            line += f" {r['op_only_ms']:.3f} | {r['floor_ms']:.3f} | {r['op_vs_floor']:.1f} |"
        lines.append(line)
    if result.get("rates"):
        rt = result["rates"]
        lines += ["", f"Measured FP32 rate {rt['fp32_flops_per_s'] / 1e12:.1f} TFLOP/s (matmul, TF32 off), copy "
                  f"bandwidth {rt['bytes_per_s'] / 1e9:.0f} GB/s; floor = max(FLOPs / rate, bytes / bandwidth) with "
                  f"{FWD_FLOPS} + {BWD_FLOPS} FLOPs per (pair, unit)."]
    lines += ["", "Index pairing (P = B), the op alone, forward + backward, median of 41 interleaved runs "
              "(the `auto` rule runs index pairing, and any problem with P x H <= 2^16, on the reference):", "",
              "| B | H | P x H | fused ms | reference ms |", "|---|---|---|---|---|"]
    lines += [f"| {r['B']} | {r['H']} | {r['work']:,} | {r['fused_ms']:.3f} | {r['ref_ms']:.3f} |"
              for r in result["index_rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

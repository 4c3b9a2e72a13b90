"""What the fused pair kernel's self-check costs (ops/selfcheck.py), and what it found, per dtype.

    python benchmarks/pairing_selfcheck.py                 # CPU kernel: float32, float64
    python benchmarks/pairing_selfcheck.py --device cuda   # CUDA kernel: float32, float64, float16, bfloat16

impl="auto" runs `verify_kernel` once per (device, dtype) and process, on the first call that would use the
kernel. Each of --processes fresh processes loads the built extension (from its cache; a build is timed
separately by nothing here), initialises the device, then times:
- first: the first check of the process, per dtype in order (the first dtype also builds and scores the
  float64 reference problem, which later dtypes reuse; on CUDA it also pays the kernels' lazy module load,
  which the first real call would pay anyway);
- again: the median of --reps further checks in the same process (the cost without any first-use effects).
Also recorded: each dtype's verdict and its worst relative error against the tolerance, i.e. what the check
saw on this machine. Results: benchmarks/results/pairing-selfcheck-{cpu,cuda}.{json,md}. Benchmarks measure;
they never pass or fail on time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pairing import _machine, write_results  # noqa: E402  (benchmarks/pairing.py)

from tgan_deploy.ops import selfcheck  # noqa: E402
from tgan_deploy.ops.build import load_pairing  # noqa: E402
from tgan_deploy.ops.pairing import _KERNEL_DTYPES  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DTYPES = _KERNEL_DTYPES  # every dtype each fused kernel takes


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def child(device: str, reps: int) -> dict[str, object]:
    """One fresh process: load, initialise the device, then first and repeated checks per dtype."""
    start = time.perf_counter()
    kernel = load_pairing(device).module
    load_s = time.perf_counter() - start
    if device == "cuda":
        torch.zeros(1, device=device)  # the CUDA context exists before any real pair_scores call
        torch.cuda.synchronize()
    first = {}
    for dtype in DTYPES[device]:
        result = selfcheck.verify_kernel(kernel, device, dtype)
        first[_name(dtype)] = {"seconds": result.seconds, "ok": result.ok, "worst": result.worst,
                               "tolerance": result.tolerance, "describe": result.describe(),
                               "errors": {f"{c} {o}": e for (c, o), e in result.errors.items()}}
    again = {_name(dtype): [selfcheck.verify_kernel(kernel, device, dtype).seconds for _ in range(reps)]
             for dtype in DTYPES[device]}
    reference_s = []
    for _ in range(reps):  # the float64 reference problem alone (cached after the first check of a process)
        selfcheck._problem.cache_clear()
        t0 = time.perf_counter()
        selfcheck._problem()
        reference_s.append(time.perf_counter() - t0)
    return {"load_s": load_s, "first": first, "again_s": again, "reference_s": reference_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes (first-check samples)")
    parser.add_argument("--reps", type=int, default=20, help="repeated checks per dtype in each process")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.device, args.reps)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda needs a CUDA GPU", file=sys.stderr)
        return 2
    load_pairing(args.device)  # build once here, so that every child loads from the cache
    cmd = [sys.executable, __file__, "--child", "--device", args.device, "--reps", str(args.reps),
           "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    runs = []
    for n in range(args.processes):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            print(f"error: process {n + 1} failed:\n{proc.stderr.strip()}", file=sys.stderr)
            return 1
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"process {n + 1}/{args.processes}: " + ", ".join(
            f"{d} {1e3 * r['seconds']:.2f} ms" for d, r in runs[-1]["first"].items()), flush=True)
    result = {"benchmark": "pairing-selfcheck", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "device": args.device, "machine": _machine(args.device), "threads": args.threads,
              "processes": args.processes, "reps": args.reps, "note": args.note,
              "problem": {"rows_a": selfcheck.ROWS_A, "rows_c": selfcheck.ROWS_C, "hidden": selfcheck.HIDDEN,
                          "list_pairs": selfcheck.LIST_PAIRS, "negative_slope": selfcheck.NEGATIVE_SLOPE},
              "runs": runs}
    write_results(args.out / f"pairing-selfcheck-{args.device}.json", result, to_markdown(result))
    return 0


def ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


def to_markdown(result: dict) -> str:  # type: ignore[type-arg]
    m, runs = result["machine"], result["runs"]
    where = m.get("gpu") or m["cpu"]
    lines = [f"# Self-check of the fused pair kernel ({result['device']})", "",
             f"{result['date']}; {where}; torch {m['torch']}; {result['threads']} CPU threads; "
             f"{result['processes']} fresh processes. {result['note']}".rstrip(), "",
             "`verify_kernel` (index, all and a list; forward and backward; vs the float64 reference), as "
             "impl=\"auto\" runs it once per (device, dtype) and process. first: the process's first check of that "
             "dtype, in table order (the first row also builds the cached reference problem); again: repeated "
             "checks in the same process. Medians (method: benchmarks/pairing_selfcheck.py).", "",
             "| dtype | first ms | again ms | verdict | worst relative error | tolerance |",
             "|---|---|---|---|---|---|"]
    for dtype, first in runs[0]["first"].items():
        firsts = [r["first"][dtype]["seconds"] for r in runs]
        again = [s for r in runs for s in r["again_s"][dtype]]
        verdicts = {r["first"][dtype]["ok"] for r in runs}
        verdict = "ok" if verdicts == {True} else "FAILED" if verdicts == {False} else "mixed"
        worst = max(r["first"][dtype]["worst"] for r in runs)
        lines.append(f"| {dtype} | {ms(firsts):.2f} | {ms(again):.2f} | {verdict} | {worst:.1e} | "
                     f"{first['tolerance']:.1e} |")
    lines += ["", f"Extension load from its cache: {ms([r['load_s'] for r in runs]):.0f} ms; the float64 reference "
              f"problem alone: {ms([s for r in runs for s in r['reference_s']]):.2f} ms."]
    failed = sorted({r["first"][d]["describe"] for r in runs for d in r["first"] if not r["first"][d]["ok"]})
    if failed:
        lines += ["", "Failures:", "", *[f"- {text}" for text in failed]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

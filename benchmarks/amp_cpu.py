"""optim.amp bf16 against fp32 on the CPU: the trainer's time per iteration, side by side in one process.

Each case trains with the real trainer (tgan_deploy.train.loop.train) twice per mode, a short and a long run;
time per iteration = (long - short) / extra iterations, so setup and the end-of-run checkpoint and samples
cancel out. Rounds interleave the modes (fp32 short, bf16 short, fp32 long, bf16 long) and medians are
reported, of wall time (run this alone: `flock -x /tmp/tgan-cpu.lock`) and of CPU time, after one untimed
warm-up run per mode (data loading and first-call kernel selection). Threads: torch's
default (all cores), as `make demo` trains. Cases: the demo's 32 px model (benchmarks the `make demo` choice),
the reference's widths at 32 px (what `--data builtin:mnist5k` trains) and the 2-D toy preset (a small MLP).

    PYTHONPATH=. python benchmarks/amp_cpu.py [--rounds 5]
Writes benchmarks/results/amp-cpu.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tgan_deploy.config import TrainConfig
from tgan_deploy.demo import demo_config
from tgan_deploy.io import write_json_atomic, write_text_atomic
from tgan_deploy.train.loop import train
from tgan_deploy.train.settings import resolve

RESULTS = Path(__file__).parent / "results"
MODES = ("none", "bf16")


def demo_case(out: Path) -> TrainConfig:
    return demo_config(out, steps=1)


def mnist_preset_case(out: Path) -> TrainConfig:
    return resolve(None, {"data.source": "builtin:mnist5k"})[0]  # what `tgan-train --data builtin:mnist5k` trains


def toy_case(out: Path) -> TrainConfig:
    return resolve(None, {"data.source": "builtin:ring8"})[0]


CASES = {  # name: (config factory, short iterations, long iterations)
    "demo 32 px (mnist5k, base 16, batch 32)": (demo_case, 5, 45),
    "reference widths at 32 px (mnist5k preset: base 64, head 512, batch 64)": (mnist_preset_case, 2, 12),
    "2-D preset (ring8, MLP width 128, batch 100)": (toy_case, 50, 350),
}


def timed_run(make: Any, steps: int, amp: str, out: Path) -> tuple[float, float]:
    cfg = make(out)
    cfg.optim.amp, cfg.run.steps, cfg.run.out, cfg.run.device = amp, steps, str(out / "run"), "cpu"
    cfg.run.log_every = cfg.run.sample_every = cfg.run.checkpoint_every = 10**9  # only at the end
    cfg.run.tensorboard = False
    wall, cpu = time.perf_counter(), time.process_time()
    train(cfg, force=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, short, long) in CASES.items():
            per_it: dict[str, dict[str, list[float]]] = {m: {"wall": [], "cpu": []} for m in MODES}
            for m in MODES:  # warm-up, untimed: data loading (cached per process), first-call kernel selection
                timed_run(make, short, m, Path(tmp))
            for _ in range(args.rounds):
                runs = {(m, n): timed_run(make, n, m, Path(tmp)) for n in (short, long) for m in MODES}
                for m in MODES:
                    for i, kind in enumerate(("wall", "cpu")):
                        per_it[m][kind].append((runs[m, long][i] - runs[m, short][i]) / (long - short))
            med = {m: {k: statistics.median(v) for k, v in per_it[m].items()} for m in MODES}
            rows.append({"case": name, "iterations": [short, long], "rounds": args.rounds,
                         "fp32_wall_ms": round(med["none"]["wall"] * 1e3, 2),
                         "bf16_wall_ms": round(med["bf16"]["wall"] * 1e3, 2),
                         "speedup_wall": round(med["none"]["wall"] / med["bf16"]["wall"], 2),
                         "fp32_cpu_ms": round(med["none"]["cpu"] * 1e3, 2),
                         "bf16_cpu_ms": round(med["bf16"]["cpu"] * 1e3, 2),
                         "speedup_cpu": round(med["none"]["cpu"] / med["bf16"]["cpu"], 2),
                         "runs_ms": {m: {k: [round(x * 1e3, 2) for x in v] for k, v in per_it[m].items()}
                                     for m in MODES}})
            print({k: v for k, v in rows[-1].items() if k != "runs_ms"}, flush=True)
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                       f"avx512_bf16: {'avx512_bf16' in cpu_flags}, amx_bf16: {'amx_bf16' in cpu_flags}",
            "python": platform.python_version(), "results": rows}
    write_json_atomic(RESULTS / "amp-cpu.json", meta)
    write_text_atomic(RESULTS / "amp-cpu.md", to_markdown(meta, args.rounds))


def to_markdown(meta: dict[str, Any], rounds: int) -> str:
    header = ("| case | fp32 wall ms/it | bf16 wall ms/it | bf16 speed-up (wall) | fp32 CPU ms/it | bf16 CPU ms/it "
              "| bf16 speed-up (CPU) |\n|---|---|---|---|---|---|---|")
    body = [f"| {r['case']} | {r['fp32_wall_ms']} | {r['bf16_wall_ms']} | {r['speedup_wall']:.2f}x | "
            f"{r['fp32_cpu_ms']} | {r['bf16_cpu_ms']} | {r['speedup_cpu']:.2f}x |" for r in meta["results"]]
    return (f"# optim.amp bf16 vs fp32 on the CPU ({meta['date']})\n\nMachine: {meta['machine']}; run alone "
            "(`flock -x`). ms per iteration = (long run - short run) / extra iterations of the real trainer; "
            f"median of {rounds} interleaved rounds. Produced by `benchmarks/amp_cpu.py`.\n\n"
            + "\n".join([header, *body]) + "\n")

if __name__ == "__main__":
    main()

"""The cost of --arch stylegan2 (issue 27): CPU seconds per iteration against the reference DCGAN at the same
resolution (builtin:mnist5k, 32 px, each with tgan-train's presets, t-sgan), and the share lazy R1 takes
(the stylegan2 preset with objective.r1_gamma 0 against the preset's gamma, every 16 critic steps).

Per-iteration CPU time as experiments/conditional.py measures it: (long run - short run) / extra iterations on
one thread, the configurations interleaved, --rounds rounds, medians. The extra iterations should be a multiple of
16 so every run does the same number of R1 steps per iteration on average.

    python experiments/stylegan2_cost.py            # ~20 CPU minutes (run on a quiet machine)
    python experiments/stylegan2_cost.py --quick    # smoke test

Results: OUT/stylegan2_cost/{cost.json, summary.md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import DEFAULT_OUT, machine
from experiments.stylegan2_compare import cpu_seconds_per_iteration

CONFIGS: dict[str, dict[str, Any]] = {
    "dcgan (tgan-train defaults)": {"model.arch": "dcgan"},
    "stylegan2 (preset, R1 every 16)": {"model.arch": "stylegan2"},
    "stylegan2 without R1": {"model.arch": "stylegan2", "objective.r1_gamma": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=64, help="extra iterations of the long runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.iterations, args.out = 1, 2, args.out / "quick"
    per_it: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, overrides in CONFIGS.items():
            per_it[name].append(cpu_seconds_per_iteration({"objective.name": "t-sgan", **overrides}, args.iterations))
    median = {name: statistics.median(values) for name, values in per_it.items()}
    dcgan, sg2, no_r1 = (median[name] for name in CONFIGS)
    result = {"machine": machine(), "rounds": args.rounds, "iterations": args.iterations,
              "cpu_s_per_iteration": {name: [round(v, 5) for v in values] for name, values in per_it.items()},
              "stylegan2_over_dcgan": round(sg2 / dcgan, 3), "r1_share_percent": round(100 * (1 - no_r1 / sg2), 1)}
    lines = ["# The cost of --arch stylegan2 (builtin:mnist5k, 32 px, t-sgan, presets, 1 thread)", "",
             f"Machine and date: {machine()}", "", "| configuration | CPU s / iteration (median) |", "|---|---|"]
    lines += [f"| {name} | {median[name]:.4f} |" for name in CONFIGS]
    lines += ["", f"stylegan2 / dcgan: {result['stylegan2_over_dcgan']}x per iteration (note: the presets differ: "
              "batch 32 and 1 generator step for stylegan2, batch 64 and 2 generator steps for the DCGAN); "
              f"R1 share of a stylegan2 iteration: {result['r1_share_percent']} %."]
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    out = args.out / "stylegan2_cost"
    write_json_atomic(out / "cost.json", result)
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Issue 4: index vs all pairing for t-sgan on ring8 and grid25 under the SAME compute budget, not the
same number of iterations.

The budget is CPU time of one thread (time.process_time), because this machine's wall-clock is shared
with other jobs; on an idle machine the two are the same. Procedure:
  1. calibrate: interleaved short runs of each pairing (2 x CALIBRATION_STEPS iterations each) give the
     median CPU seconds per iteration, per dataset;
  2. all pairs trains --steps iterations; index pairing trains --steps x (cost_all / cost_index)
     iterations, i.e. the same CPU time;
  3. score both with PacGAN's protocol (modes / HQ % / reverse KL on 2,500 samples).

    python experiments/pairing_budget.py --quick
    python experiments/pairing_budget.py                 # PacGAN's settings (defaults), 10 seeds
    python experiments/pairing_budget.py --seeds 1 --steps 3000 --lr 1e-3 --hidden 128   # what ran here

Results: OUT/pairing_budget/{calibration_*.json, runs/*.json, summary.json, summary.md}. Resumable.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import (
    RUNS_DIR,
    common_args,
    fmt,
    load_results,
    machine,
    mean_se,
    remove_run,
    run_jobs,
    toy_config,
    toy_job,
    toy_run_name,
    train_run,
)

DATASETS = ["ring8", "grid25"]
PAIRINGS = ["index", "all"]
# Long enough that the fixed cost of a run (building models, data, the final checkpoint) is a few per cent:
# 40-iteration calibrations overstated index pairing's cost per iteration ~1.9x (results/pairing_budget/
# superseded_short_calibration), which gave index pairing less CPU time than all pairs.
CALIBRATION_STEPS = 300
CALIBRATION_REPEATS = 2


def calibrate(out: Path, quick: bool, lr: float, hidden: int) -> dict[str, dict[str, float]]:
    """Median CPU seconds per iteration of t-sgan per (dataset, pairing), from interleaved runs."""
    from tgan_deploy.io import write_json_atomic

    path = out / f"calibration_h{hidden}_lr{lr:g}.json"
    if path.exists():
        import json

        return json.loads(path.read_text())["cpu_s_per_iteration"]
    samples: dict[str, dict[str, list[float]]] = {d: {p: [] for p in PAIRINGS} for d in DATASETS}
    for repeat in range(CALIBRATION_REPEATS):
        for dataset in DATASETS:
            for pairing in PAIRINGS:  # interleaved: machine load drifts affect both alike
                run_dir = RUNS_DIR / ("quick" if quick else "") / "pairing_calibration" / f"{dataset}-{pairing}"
                cfg = toy_config(dataset, "t-sgan", pairing, steps=CALIBRATION_STEPS, seed=repeat, out=run_dir,
                                 lr=lr, hidden=hidden)
                result = train_run(cfg, run_dir.parent / f"{dataset}-{pairing}.log")
                samples[dataset][pairing].append(result["cpu_s"] / CALIBRATION_STEPS)
                remove_run(run_dir)
    cost = {d: {p: statistics.median(v) for p, v in per.items()} for d, per in samples.items()}
    write_json_atomic(path, {"machine": machine(), "steps": CALIBRATION_STEPS, "lr": lr, "hidden": hidden,
                             "repeats": CALIBRATION_REPEATS,
                             "samples": samples, "cpu_s_per_iteration": cost})
    return cost


def summarise(results: list[dict[str, Any]], cost: dict[str, dict[str, float]], out: Path) -> None:
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    rows = []
    lines = ["# Issue 4: t-sgan index vs all pairing at the same compute budget", "",
             f"Machine and date: {machine()}", "",
             "Budget = CPU time of one thread. Calibrated CPU s per iteration (median of interleaved runs): "
             + "; ".join(f"{d}: index {c['index'] * 1e3:.1f} ms, all {c['all'] * 1e3:.1f} ms "
                         f"(all / index = {c['all'] / c['index']:.2f})" for d, c in cost.items()), "",
             "| dataset | pairing | iterations | runs | CPU s / run (measured) | modes | HQ % | reverse KL | "
             "diverged |", "|---|---|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for pairing in PAIRINGS:
            rs = [r for r in results if r["dataset"] == dataset and r["pairing"] == pairing]
            if not rs:
                continue
            row: dict[str, Any] = {"dataset": dataset, "pairing": pairing, "steps": sorted({r["steps"] for r in rs}),
                                   "runs": len(rs), "diverged": sum(r["diverged"] for r in rs)}
            for key in ("modes", "hq_percent", "reverse_kl", "cpu_s", "wall_s"):
                row[key], row[key + "_se"], _ = mean_se(r[key] for r in rs)
            rows.append(row)
            lines.append(f"| {dataset} | {pairing} | {', '.join(map(str, row['steps']))} | {row['runs']} | "
                         f"{fmt(row['cpu_s'], row['cpu_s_se'], 0)} | {fmt(row['modes'], row['modes_se'], 1)} | "
                         f"{fmt(row['hq_percent'], row['hq_percent_se'], 1)} | "
                         f"{fmt(row['reverse_kl'], row['reverse_kl_se'], 2)} | {row['diverged']} |")
    write_json_atomic(out / "summary.json", {"machine": machine(), "cpu_s_per_iteration": cost, "rows": rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    args = common_args(__doc__.splitlines()[0], default_seeds=10, default_steps=20000, quick_steps=100, toy=True)
    out = args.out / "pairing_budget"
    if args.summarise_only:
        import json

        cost = json.loads((out / f"calibration_h{args.hidden}_lr{args.lr:g}.json").read_text())["cpu_s_per_iteration"]
    else:
        cost = calibrate(out, args.quick, args.lr, args.hidden)
    jobs = []
    for seed in range(args.seeds):
        for dataset in DATASETS:
            for pairing in PAIRINGS:
                steps = args.steps if pairing == "all" else round(args.steps * cost[dataset]["all"]
                                                                  / cost[dataset]["index"])
                name = toy_run_name(dataset, "t-sgan", pairing, args.hidden, args.lr, steps, seed)
                run_dir = RUNS_DIR / ("quick" if args.quick else "") / "pairing_budget" / name
                path = out / "runs" / f"{name}.json"
                same = out.parent / "toy_mixtures" / "runs" / f"{name}.json"
                if not path.exists() and same.exists():  # the identical run of toy_mixtures.py: reuse it
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(same, path)
                jobs.append((path, toy_job, (dataset, "t-sgan", pairing, steps, seed, run_dir, args.lr, 1, 2,
                                             args.hidden)))
    if not args.summarise_only:
        run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), cost, out)


if __name__ == "__main__":
    main()

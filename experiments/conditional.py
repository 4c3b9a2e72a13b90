"""Class-conditional T-GANs (issue 17): conditional accuracy vs iterations, conditional vs unconditional
quality at equal iterations, and the per-iteration cost of conditioning.

1. builtin:mnist5k, 32 px (convergence.py's small DCGAN: base_channels 16, batch 64), t-sgan index pairing,
   --conditional (label embedding concatenated with z, projection pair critic) for --seeds seeds, and the
   same setup unconditional (seed 0). Every --every iterations the EMA generator is scored by
   `tgan_deploy.metrics.evaluate`: conditional accuracy (the project's MNIST classifier calls class-k
   samples k), classifier Fréchet distance, class coverage.
2. builtin:ring8 (experiments/_common.toy_config, PacGAN's MLPs at hidden 128), t-sgan: conditional accuracy
   (samples of class k nearest component k), modes, HQ %, conditional vs unconditional.
3. Cost: CPU time per iteration of conditional vs unconditional training, measured like
   benchmarks/train_overhead.py (CPU time of a long run minus a short run, per extra iteration), runs
   interleaved A/B/A/B, median of --rounds ratios.

    python experiments/conditional.py            # ~10 CPU minutes (2 workers)
    python experiments/conditional.py --quick    # smoke test

Results: OUT/conditional/{runs/*.json, summary.json, summary.md}. Resumable (finished runs are kept).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import (
    DEFAULT_OUT,
    RUNS_DIR,
    fmt,
    load_results,
    machine,
    mean_se,
    run_jobs,
    toy_config,
    train_run,
)
from experiments.convergence import mnist_config

TOY_HIDDEN = 128


def run_config(data: str, conditional: bool, steps: int, every: int, seed: int, out: Path) -> Any:
    if data == "mnist5k":
        cfg = mnist_config("t-sgan", "index", steps=steps, every=every, seed=seed, out=out)
    else:
        cfg = toy_config(data, "t-sgan", "index", steps=steps, seed=seed, out=out, hidden=TOY_HIDDEN,
                         checkpoint_every=every)
    cfg.data.conditional = conditional
    return cfg


def job(data: str, conditional: bool, steps: int, every: int, seed: int, eval_n: int, run_dir: Path) -> dict[str, Any]:
    from tgan_deploy.checkpoint import load_generator
    from tgan_deploy.metrics.evaluate import evaluate
    from tgan_deploy.run_layout import list_checkpoints

    cfg = run_config(data, conditional, steps, every, seed, run_dir)
    result: dict[str, Any] = {"data": data, "conditional": conditional, "steps": steps, "seed": seed,
                              "every": every, "eval_n": eval_n} | train_run(cfg, run_dir / "experiment.log")
    curve = []
    for ckpt in list_checkpoints(run_dir):
        generator, ckpt_cfg, state = load_generator(ckpt, weights="ema")
        scored = evaluate(generator, ckpt_cfg, n=eval_n, seed=0)
        curve.append({"step": int(state["step"])} | {k: float(v) for k, v in scored["metrics"].items()}
                     | ({"per_class": scored["details"]["conditional_accuracy_per_class"]} if conditional else {}))
    result["curve"] = curve
    return result


# -- the cost of conditioning ---------------------------------------------------------------------

COST_CASES = {
    # name: (data, short iterations, long iterations)
    "dcgan-32px (mnist5k, base 16, batch 64)": ("mnist5k", 20, 220),
    "toy-mlp (ring8, hidden 128, batch 100)": ("ring8", 50, 1050),
}


def iteration_cpu_seconds(data: str, conditional: bool, iterations: int, out: Path) -> float:
    from tgan_deploy.train.loop import train

    cfg = run_config(data, conditional, iterations, 10**9, 0, out)
    cfg.run.log_every = cfg.run.sample_every = cfg.run.checkpoint_every = 10**9  # only at the end
    start = time.process_time()
    train(cfg, force=True)
    return time.process_time() - start


def cost(rounds: int, scale: float) -> list[dict[str, Any]]:
    import torch

    from experiments._common import redirect_output

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, redirect_output(Path(tmp) / "log.txt"):
        for name, (data, short, long) in COST_CASES.items():
            short, long = max(2, int(short * scale)), max(4, int(long * scale))
            per_it: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(rounds):  # interleaved: unconditional, conditional, unconditional, ...
                for conditional in (False, True):
                    runs = [iteration_cpu_seconds(data, conditional, n, Path(tmp) / "run") for n in (short, long)]
                    per_it[conditional].append((runs[1] - runs[0]) / (long - short))
            ratios = [c / u for u, c in zip(per_it[False], per_it[True], strict=True)]
            rows.append({"case": name, "iterations": [short, long], "rounds": rounds,
                         "unconditional_ms": round(1e3 * statistics.median(per_it[False]), 3),
                         "conditional_ms": round(1e3 * statistics.median(per_it[True]), 3),
                         "ratios": [round(r, 4) for r in ratios],
                         "overhead_percent": round(100 * (statistics.median(ratios) - 1), 1)})
    return rows


# -- summary --------------------------------------------------------------------------------------

def summarise(results: list[dict[str, Any]], costs: list[dict[str, Any]], out: Path) -> None:
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    lines = ["# Class-conditional T-GANs: conditional accuracy, quality, cost", "",
             f"Machine and date: {machine()}", "",
             "t-sgan, index pairing; conditional = label embedding concatenated with z + projection pair critic "
             "(Miyato & Koyama 2018) on E(x_r) - E(x_f), fakes drawn on the real batch's labels. Scores of the "
             "EMA generator (mnist5k) / raw generator (ring8) from `tgan_deploy.metrics.evaluate`, labels "
             "seed mod num_classes.", ""]
    rows: list[dict[str, Any]] = []
    for data in ("mnist5k", "ring8"):
        runs = [r for r in results if r["data"] == data and r["curve"]]
        if not runs:
            continue
        quality = ["cfd", "class_coverage"] if data == "mnist5k" else ["modes", "hq_percent"]
        lines += [f"## builtin:{data}", "",
                  f"| model | seeds | iterations | conditional accuracy | {' | '.join(quality)} |",
                  "|---|---|---|---|" + "---|" * len(quality)]
        steps = sorted({p["step"] for r in runs for p in r["curve"]})
        for conditional in (True, False):
            group = [r for r in runs if r["conditional"] == conditional]
            for step in steps:
                points = [p for r in group for p in r["curve"] if p["step"] == step]
                if not points:
                    continue
                acc = mean_se(p.get("conditional_accuracy", float("nan")) for p in points)
                cells = [mean_se(p[k] for p in points) for k in quality]
                rows.append({"data": data, "conditional": conditional, "step": step, "seeds": len(points),
                             "conditional_accuracy": acc[:2]} | {k: c[:2] for k, c in zip(quality, cells, strict=True)})
                lines.append(f"| {'conditional' if conditional else 'unconditional'} | {len(points)} | {step} | "
                             f"{fmt(100 * acc[0], 100 * acc[1], 1) + ' %' if conditional else '–'} | "
                             + " | ".join(fmt(c[0], c[1], 2) for c in cells) + " |")
        lines.append("")
    if costs:
        lines += ["## Cost of conditioning (CPU time per iteration, 1 thread)", "",
                  "(CPU time of a long run - of a short run) / extra iterations; conditional and unconditional "
                  "runs interleaved; median of the per-round ratios. The machine was shared with other jobs.", "",
                  "| case | unconditional ms/it | conditional ms/it | overhead | per-round ratios |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['case']} | {c['unconditional_ms']} | {c['conditional_ms']} | {c['overhead_percent']:+.1f} % | "
                  f"{', '.join(f'{r:.3f}' for r in c['ratios'])} |" for c in costs]
    write_json_atomic(out / "summary.json", {"machine": machine(), "rows": rows, "cost": costs})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: a few iterations, 1 seed")
    parser.add_argument("--seeds", type=int, default=2, help="conditional seeds per data set (0 .. N-1)")
    parser.add_argument("--mnist-steps", type=int, default=800)
    parser.add_argument("--toy-steps", type=int, default=1500)
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run (every steps / N iterations)")
    parser.add_argument("--eval-n", type=int, default=1000, help="generated samples per evaluation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the cost measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    scale = 1.0
    if args.quick:
        args.seeds, args.mnist_steps, args.toy_steps, args.evals, args.eval_n, args.rounds = 1, 20, 40, 2, 200, 1
        args.out, scale = args.out / "quick", 0.2
    out = args.out / "conditional"
    from tgan_deploy.metrics.classifier import load_classifier

    load_classifier("mnist5k", progress=True)  # trained once and cached, before the workers need it
    jobs = []
    for data, steps in (("mnist5k", args.mnist_steps), ("ring8", args.toy_steps)):
        for conditional, seeds in ((True, range(args.seeds)), (False, range(1))):
            for seed in seeds:
                name = f"{data}__{'cond' if conditional else 'uncond'}__n{steps}__s{seed}"
                run_dir = RUNS_DIR / ("quick" if args.quick else "") / "conditional" / name
                jobs.append((out / "runs" / f"{name}.json", job,
                             (data, conditional, steps, steps // args.evals, seed, args.eval_n, run_dir)))
    run_jobs(jobs, args.workers)
    cost_file = out / "cost.json"
    if not cost_file.exists():
        from tgan_deploy.io import write_json_atomic

        write_json_atomic(cost_file, cost(args.rounds, scale))
    import json

    summarise(load_results(out / "runs"), json.loads(cost_file.read_text()), out)


if __name__ == "__main__":
    main()

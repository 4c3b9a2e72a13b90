"""Small data (issue 18): FD against iterations on 500 and 5,000 MNIST digits, with and without augmentation,
the step cost of augmentation, and the share of training time the evaluation during training takes.

1. builtin:mnist5k with data.limit 500 (a fixed seeded subset, TrainingData.subset) and all 5,000, the
   small DCGAN of convergence.py (32 px, base 16, batch 64), t-sgan (index pairing) and rsgan (the best
   baseline on MNIST in docs/results.md), augment none / diffaug / ada, --seeds seeds. The trainer's own
   evaluation (run.eval_every, the digit classifier's Fréchet distance CFD of the EMA generator on
   --eval-n samples) gives the curve; best.pt's score is the best of it.
2. Cost: CPU time per iteration with augment diffaug (every transform on every image: ADA's worst case,
   p = 1) and ada (p starting at 0) against none, measured as experiments/conditional.py measures
   conditioning: (long run - short run) / extra iterations, runs interleaved, median of --rounds ratios.
3. Evaluation share: wall time of the evaluations / wall time of the run, at the defaults (every 1,000
   iterations, 2,500 samples) on the default-width model (base 64), from a 2,000-iteration run.

    python experiments/small_data.py            # ~45 CPU minutes with 2 workers
    python experiments/small_data.py --quick    # smoke test

Results: OUT/small_data/{runs/*.json, cost.json, eval_share.json, summary.json, summary.md, fd_curves.png}.
Resumable (finished runs are kept).
"""

from __future__ import annotations

import argparse
import json
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
    redirect_output,
    run_jobs,
    save_figure,
    train_run,
)
from experiments.convergence import mnist_config

SIZES = (500, 5000)
POLICIES = ("none", "diffaug", "ada")
OBJECTIVES = ("t-sgan", "rsgan")


def run_config(objective: str, size: int, policy: str, steps: int, every: int, seed: int, eval_n: int,
               out: Path) -> Any:
    cfg = mnist_config(objective, "index", steps=steps, every=steps, seed=seed, out=out)
    cfg.data.limit = size
    cfg.augment.policy = policy
    cfg.run.eval_every, cfg.run.eval_samples, cfg.run.log_every = every, eval_n, every
    return cfg


def job(objective: str, size: int, policy: str, steps: int, every: int, seed: int, eval_n: int,
        run_dir: Path) -> dict[str, Any]:
    from tgan_deploy.train.logging import read_metrics

    cfg = run_config(objective, size, policy, steps, every, seed, eval_n, run_dir)
    result: dict[str, Any] = {"objective": objective, "size": size, "policy": policy, "steps": steps, "seed": seed,
                              "every": every, "eval_n": eval_n} | train_run(cfg, run_dir / "experiment.log")
    records = read_metrics(run_dir)
    result["curve"] = [{"step": r["step"], "cfd": r["eval/cfd"]} for r in records if "eval/cfd" in r]
    result["augment_p"] = [{"step": r["step"], "p": r["augment_p"]} for r in records if "augment_p" in r]
    return result


# -- the cost of augmentation ---------------------------------------------------------------------

def iteration_cpu_seconds(policy: str, iterations: int, out: Path) -> float:
    from tgan_deploy.train.loop import train

    cfg = run_config("t-sgan", 5000, policy, iterations, 10**9, 0, 100, out)
    cfg.run.eval_every = 0
    cfg.run.log_every = cfg.run.sample_every = cfg.run.checkpoint_every = 10**9  # only at the end
    start = time.process_time()
    train(cfg, force=True)
    return time.process_time() - start


def cost(rounds: int, short: int, long: int) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    per_it: dict[str, list[float]] = {p: [] for p in POLICIES}
    with tempfile.TemporaryDirectory() as tmp, redirect_output(Path(tmp) / "log.txt"):
        for _ in range(rounds):  # interleaved: none, diffaug, ada, none, ...
            for policy in POLICIES:
                runs = [iteration_cpu_seconds(policy, n, Path(tmp) / "run") for n in (short, long)]
                per_it[policy].append((runs[1] - runs[0]) / (long - short))
    rows = []
    for policy in POLICIES[1:]:
        ratios = [a / n for n, a in zip(per_it["none"], per_it[policy], strict=True)]
        rows.append({"policy": policy, "iterations": [short, long], "rounds": rounds,
                     "none_ms": round(1e3 * statistics.median(per_it["none"]), 3),
                     "augmented_ms": round(1e3 * statistics.median(per_it[policy]), 3),
                     "ratios": [round(r, 4) for r in ratios],
                     "overhead_percent": round(100 * (statistics.median(ratios) - 1), 1)})
    return rows


# -- the share of the evaluation ------------------------------------------------------------------

def eval_share(steps: int) -> dict[str, Any]:
    """A default-width run with the default evaluation settings: evaluation wall time / run wall time."""
    import torch

    from tgan_deploy.config import TrainConfig
    from tgan_deploy.train import loop

    torch.set_num_threads(1)
    spent: list[float] = []
    original = loop.evaluate_and_keep_best

    def timed(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        original(*args, **kwargs)
        spent.append(time.perf_counter() - start)

    defaults = TrainConfig().run
    with tempfile.TemporaryDirectory() as tmp, redirect_output(Path(tmp) / "log.txt"):
        cfg = TrainConfig()
        cfg.apply_overrides({"data.source": "builtin:mnist5k", "model.channels": 1, "model.resolution": 32,
                             "run.steps": steps, "run.out": str(Path(tmp) / "run"), "run.device": "cpu",
                             "run.threads": 1, "run.tensorboard": False})
        loop.evaluate_and_keep_best = timed  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            loop.train(cfg)
            total = time.perf_counter() - start
        finally:
            loop.evaluate_and_keep_best = original  # type: ignore[assignment]
    return {"steps": steps, "eval_every": defaults.eval_every, "eval_samples": defaults.eval_samples,
            "evaluations": len(spent), "eval_s": round(sum(spent), 2), "run_s": round(total, 2),
            "share_percent": round(100 * sum(spent) / total, 1), "model": "mnist5k preset, base_channels 64"}


# -- summary --------------------------------------------------------------------------------------

def summarise(results: list[dict[str, Any]], costs: list[dict[str, Any]], share: dict[str, Any] | None,
              out: Path, sizes: list[int], objectives: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tgan_deploy.io import write_json_atomic, write_text_atomic

    lines = ["# Small data: FD against iterations with and without augmentation", "",
             f"Machine and date: {machine()}", "",
             "builtin:mnist5k, 500 (fixed seeded subset, `data.limit`) or all 5,000 digits; DCGAN 32 px base 16, "
             "batch 64, index pairing. CFD = Fréchet distance in the project's digit classifier's features "
             "(EMA generator, evaluated by the trainer itself), lower is better; mean ± s.e. over seeds; "
             "'best' = the lowest CFD of the run (what best.pt holds).", ""]
    rows: list[dict[str, Any]] = []
    fig, axes = plt.subplots(1, len(sizes) * len(objectives), figsize=(4.2 * len(sizes) * len(objectives), 3.6),
                             dpi=100, squeeze=False)
    panel = 0
    for size in sizes:
        for objective in objectives:
            group = [r for r in results if r["size"] == size and r["objective"] == objective and r["curve"]]
            if not group:
                continue
            steps = sorted({p["step"] for r in group for p in r["curve"]})
            lines += [f"## {objective}, {size} images", "",
                      "| augment | seeds | " + " | ".join(f"CFD @ {s}" for s in steps) + " | best CFD | final p |",
                      "|---|---|" + "---|" * (len(steps) + 2)]
            ax = axes[0, panel]
            panel += 1
            for policy in POLICIES:
                runs = [r for r in group if r["policy"] == policy]
                if not runs:
                    continue
                cells, means = [], []
                for step in steps:
                    m = mean_se(p["cfd"] for r in runs for p in r["curve"] if p["step"] == step)
                    cells.append(fmt(m[0], m[1], 1))
                    means.append(m[0])
                best = mean_se(min(p["cfd"] for p in r["curve"]) for r in runs)
                p_final = mean_se(r["augment_p"][-1]["p"] for r in runs) if runs[0]["augment_p"] else None
                rows.append({"objective": objective, "size": size, "policy": policy, "seeds": len(runs),
                             "steps": steps, "cfd_mean": means, "best_cfd": best[:2],
                             "final_p": p_final[:2] if p_final else None})
                lines.append(f"| {policy} | {len(runs)} | {' | '.join(cells)} | {fmt(best[0], best[1], 1)} | "
                             f"{fmt(p_final[0], p_final[1], 2) if p_final else '–'} |")
                ax.plot(steps, means, marker="o", label=policy)
            ax.set_title(f"{objective}, {size} images")
            ax.set_xlabel("iteration")
            ax.set_ylabel("CFD (lower is better)")
            ax.set_yscale("log")
            ax.legend()
            lines.append("")
    save_figure(fig, out / "fd_curves.png")
    if costs:
        lines += ["## Step cost of augmentation (CPU time per iteration, 1 thread)", "",
                  "(CPU time of a long run - of a short run) / extra iterations, t-sgan on 5,000 digits; runs "
                  "interleaved; median of the per-round ratios. diffaug applies every transform to every image "
                  "(ADA's cost at p = 1); ada starts at p = 0 and stays low on 5,000 images.", "",
                  "| augment | none ms/it | augmented ms/it | overhead | per-round ratios |", "|---|---|---|---|---|"]
        lines += [f"| {c['policy']} | {c['none_ms']} | {c['augmented_ms']} | {c['overhead_percent']:+.1f} % | "
                  f"{', '.join(f'{r:.3f}' for r in c['ratios'])} |" for c in costs]
        lines.append("")
    if share:
        lines += ["## Cost of evaluation during training (defaults)", "",
                  f"{share['model']}, {share['steps']} iterations, run.eval_every {share['eval_every']}, "
                  f"run.eval_samples {share['eval_samples']}: {share['evaluations']} evaluations took "
                  f"{share['eval_s']} s of {share['run_s']} s, **{share['share_percent']} %** of the run.", ""]
    write_json_atomic(out / "summary.json", {"machine": machine(), "rows": rows, "cost": costs, "eval_share": share})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: a few iterations, 1 seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--evals", type=int, default=6, help="evaluations per run (every steps / N iterations)")
    parser.add_argument("--eval-n", type=int, default=1000, help="generated samples per evaluation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the cost measurement")
    parser.add_argument("--share-steps", type=int, default=2000, help="iterations of the evaluation-share run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-cost", action="store_true", help="no cost or evaluation-share measurement")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated data.limit values")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--name", default="small_data", help="results folder under --out")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    objectives = args.objectives.split(",")
    short, long = 20, 220
    if args.quick:
        args.seeds, args.steps, args.evals, args.eval_n, args.rounds, args.share_steps = 1, 20, 2, 200, 1, 20
        args.out, short, long = args.out / "quick", 4, 12
    out = args.out / args.name
    from tgan_deploy.metrics.classifier import load_classifier

    load_classifier("mnist5k", progress=True)  # trained once and cached, before the workers need it
    jobs = []
    for size in sizes:
        for objective in objectives:
            for policy in POLICIES:
                for seed in range(args.seeds):
                    name = f"{objective}__n{size}__{policy}__it{args.steps}__s{seed}"
                    run_dir = RUNS_DIR / ("quick" if args.quick else "") / args.name / name
                    jobs.append((out / "runs" / f"{name}.json", job,
                                 (objective, size, policy, args.steps, args.steps // args.evals, seed, args.eval_n,
                                  run_dir)))
    run_jobs(jobs, args.workers)
    from tgan_deploy.io import write_json_atomic

    cost_file, share_file = out / "cost.json", out / "eval_share.json"
    if not args.skip_cost and not cost_file.exists():
        write_json_atomic(cost_file, cost(args.rounds, short, long))
    if not args.skip_cost and not share_file.exists():
        write_json_atomic(share_file, eval_share(args.share_steps))
    costs = json.loads(cost_file.read_text()) if cost_file.exists() else []
    share = json.loads(share_file.read_text()) if share_file.exists() else None
    summarise(load_results(out / "runs"), costs, share, out, sizes, objectives)


if __name__ == "__main__":
    main()

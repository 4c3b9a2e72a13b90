"""T-GAN on StyleGAN2 (issue 27): quality against CPU time, and conditional accuracy at the defaults.

1. builtin:mnist5k, 32 px, the settings `tgan-train` gives (data preset + the stylegan2 preset), equal CPU
   seconds per run (--budget; each method's iterations = budget / its CPU seconds per iteration, measured on a
   --calib-iteration run), --seeds seeds:
     t-sgan on stylegan2 (pair head on the discriminator trunk, lazy R1 of the pair critic),
     t-sgan on the reference DCGAN (tgan-train's defaults for the data),
     StyleGAN2's own loss on stylegan2: sgan (non-saturating) with lazy R1 on the discriminator's own output.
   Checkpoints every --evals-th of the run are scored by tgan_deploy.metrics.evaluate (the digit classifier's
   Fréchet distance, CFD) on --eval-n samples; x = iteration x CPU seconds per iteration.
2. Conditional: `tgan-train --data builtin:mnist5k --arch stylegan2 --conditional --steps 1000`, --seeds seeds:
   conditional accuracy (class average, and per class) at 1,000 iterations. Target (issue 27): >= 0.85 mean,
   9 of 10 classes above 0.5 (the DCGAN's level: 0.92 at 800 iterations).

    python experiments/stylegan2_compare.py             # ~3 CPU hours at the defaults (2 workers: ~1.5 h)
    python experiments/stylegan2_compare.py --quick     # smoke test (~2 min)

Results: OUT/stylegan2/{runs/*.json, summary.json, summary.md, cfd_vs_cpu.png}. Resumable.
"""

from __future__ import annotations

import argparse
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

# label -> what tgan-train is told (the rest comes from its presets)
METHODS: dict[str, dict[str, Any]] = {
    "t-sgan / stylegan2": {"model.arch": "stylegan2", "objective.name": "t-sgan"},
    "t-sgan / dcgan": {"model.arch": "dcgan", "objective.name": "t-sgan"},
    "stylegan2 loss (sgan + R1) / stylegan2": {"model.arch": "stylegan2", "objective.name": "sgan"},
}


def user_config(overrides: dict[str, Any], *, steps: int, seed: int, out: Path, every: int) -> Any:
    """The config `tgan-train --data builtin:mnist5k ...` resolves (defaults <- presets <- these), run for
    `steps` iterations on one CPU thread with a checkpoint every `every`."""
    from tgan_deploy.train.settings import resolve

    cfg, _ = resolve(None, {"data.source": "builtin:mnist5k", **overrides})
    cfg.apply_overrides({"run.steps": steps, "run.seed": seed, "run.out": str(out), "run.device": "cpu",
                         "run.threads": 1, "run.eval_every": 0, "run.log_every": every, "run.sample_every": steps,
                         "run.checkpoint_every": every, "run.keep_last": 1000, "run.on_divergence": "stop",
                         "run.tensorboard": False})
    return cfg


def cpu_seconds_per_iteration(overrides: dict[str, Any], iterations: int) -> float:
    """CPU seconds per iteration of a method (one thread), from a short run after a 2-iteration warm-up."""
    import torch

    from tgan_deploy.train.loop import train

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp, redirect_output(Path(tmp) / "log.txt"):
        times = []
        for n in (2, 2 + iterations):
            cfg = user_config(overrides, steps=n, seed=0, out=Path(tmp) / "run", every=10**9)
            start = time.process_time()
            train(cfg, force=True)
            times.append(time.process_time() - start)
    return (times[1] - times[0]) / iterations


def score_checkpoints(run_dir: Path, eval_n: int) -> list[dict[str, Any]]:
    """tgan_deploy.metrics.evaluate on every kept checkpoint's EMA generator: step, cfd, conditional accuracy."""
    from tgan_deploy.checkpoint import load_generator
    from tgan_deploy.metrics.evaluate import evaluate
    from tgan_deploy.run_layout import list_checkpoints

    curve = []
    for ckpt in list_checkpoints(run_dir):
        generator, cfg, state = load_generator(ckpt)
        scored = evaluate(generator, cfg, n=eval_n, seed=0)
        curve.append({"step": int(state["step"]), **{k: float(v) for k, v in scored["metrics"].items()},
                      **({"per_class": scored["details"]["conditional_accuracy_per_class"]}
                         if "conditional_accuracy_per_class" in scored.get("details", {}) else {})})
    return curve


def job(method: str, overrides: dict[str, Any], steps: int, every: int, seed: int, eval_n: int,
        cpu_per_it: float, run_dir: Path) -> dict[str, Any]:
    cfg = user_config(overrides, steps=steps, seed=seed, out=run_dir, every=every)
    result: dict[str, Any] = {"method": method, "overrides": overrides, "steps": steps, "seed": seed,
                              "cpu_per_it": cpu_per_it} | train_run(cfg, run_dir / "experiment.log")
    result["curve"] = score_checkpoints(run_dir, eval_n)
    return result


def summarise(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tgan_deploy.io import write_json_atomic, write_text_atomic

    lines = ["# T-GAN on StyleGAN2: CFD against CPU time, conditional accuracy", "", f"Machine and date: {machine()}",
             "", "builtin:mnist5k at 32 px with tgan-train's presets; CFD = Fréchet distance in the project's digit "
             "classifier's features (EMA generator), lower is better; CPU time = iterations x the method's CPU "
             "seconds per iteration (1 thread); mean ± s.e. over seeds.", ""]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    rows = []
    quality = [r for r in results if not r.get("conditional")]
    for method in METHODS:
        runs = [r for r in quality if r["method"] == method and r["curve"]]
        if not runs:
            continue
        steps = sorted({p["step"] for r in runs for p in r["curve"]})
        means = [mean_se(p["cfd"] for r in runs for p in r["curve"] if p["step"] == s) for s in steps]
        cpu = mean_se(r["cpu_per_it"] for r in runs)[0]
        ax.plot([s * cpu for s in steps], [m[0] for m in means], marker="o", label=method)
        final = means[-1]
        rows.append({"method": method, "seeds": len(runs), "steps": steps[-1], "cpu_per_it": cpu,
                     "final_cfd": final[:2], "best_cfd": mean_se(min(p["cfd"] for p in r["curve"]) for r in runs)[:2]})
    lines += ["| method | seeds | iterations | CPU s / it | CFD at the end | best CFD |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['seeds']} | {r['steps']} | {r['cpu_per_it']:.3f} | "
              f"{fmt(*r['final_cfd'], 1)} | {fmt(*r['best_cfd'], 1)} |" for r in rows]
    ax.set_xlabel("CPU seconds (1 thread)")
    ax.set_ylabel("CFD (lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    save_figure(fig, out / "cfd_vs_cpu.png")
    conditional = [r for r in results if r.get("conditional") and r["curve"]]
    cond_rows = []
    if conditional:
        lines += ["", f"## --conditional at the defaults, {conditional[0]['steps']:,} iterations", "",
                  "| seed | conditional accuracy | classes above 0.5 | CFD |", "|---|---|---|---|"]
        for r in conditional:
            last = r["curve"][-1]
            above = sum(a > 0.5 for a in last.get("per_class", []))
            cond_rows.append({"seed": r["seed"], "accuracy": last["conditional_accuracy"], "above_half": above,
                              "cfd": last["cfd"], "per_class": last.get("per_class")})
            lines.append(f"| {r['seed']} | {last['conditional_accuracy']:.3f} | {above} of 10 | {last['cfd']:.1f} |")
        acc = mean_se(c["accuracy"] for c in cond_rows)
        lines += ["", f"Mean conditional accuracy {fmt(acc[0], acc[1], 3)} (target: >= 0.85, 9 of 10 classes "
                      "above 0.5)."]
    write_json_atomic(out / "summary.json", {"machine": machine(), "rows": rows, "conditional": cond_rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: a few iterations, 1 seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budget", type=float, default=1800.0, help="CPU seconds of training per run")
    parser.add_argument("--calib", type=int, default=20, help="iterations of the per-iteration CPU-time run")
    parser.add_argument("--evals", type=int, default=6, help="checkpoints scored per run")
    parser.add_argument("--eval-n", type=int, default=2500, help="generated samples per score")
    parser.add_argument("--conditional-steps", type=int, default=1000)
    parser.add_argument("--max-steps", type=int, default=10**9, help="cap on any run's iterations")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget, args.calib, args.evals, args.eval_n, args.max_steps = 1, 20.0, 2, 2, 200, 4
        args.conditional_steps, args.out = 4, args.out / "quick"
    out = args.out / "stylegan2"
    from tgan_deploy.metrics.classifier import load_classifier

    load_classifier("mnist5k", progress=True)  # trained once and cached, before the workers need it
    jobs = []
    for method, overrides in METHODS.items():
        per_it = cpu_seconds_per_iteration(overrides, args.calib)
        steps = max(args.evals, int(args.budget / per_it) // args.evals * args.evals)
        steps = min(steps, args.max_steps)
        print(f"{method}: {per_it:.3f} CPU s / iteration -> {steps} iterations", flush=True)
        for seed in range(args.seeds):
            name = f"{method.split(' ')[0]}__{overrides['model.arch']}__it{steps}__s{seed}"
            run_dir = RUNS_DIR / ("quick" if args.quick else "") / "stylegan2" / name
            jobs.append((out / "runs" / f"{name}.json", job,
                         (method, overrides, steps, steps // args.evals, seed, args.eval_n, per_it, run_dir)))
    conditional = {"model.arch": "stylegan2", "data.conditional": True}
    for seed in range(args.seeds):
        name = f"conditional__stylegan2__it{args.conditional_steps}__s{seed}"
        run_dir = RUNS_DIR / ("quick" if args.quick else "") / "stylegan2" / name
        jobs.append((out / "runs" / f"{name}.json", conditional_job,
                     (conditional, args.conditional_steps, seed, args.eval_n, run_dir)))
    run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), out)


def conditional_job(overrides: dict[str, Any], steps: int, seed: int, eval_n: int, run_dir: Path) -> dict[str, Any]:
    cfg = user_config(overrides, steps=steps, seed=seed, out=run_dir, every=steps)
    result: dict[str, Any] = {"method": "conditional stylegan2 (defaults)", "conditional": True, "steps": steps,
                              "seed": seed} | train_run(cfg, run_dir / "experiment.log")
    result["curve"] = score_checkpoints(run_dir, eval_n)
    return result


if __name__ == "__main__":
    main()

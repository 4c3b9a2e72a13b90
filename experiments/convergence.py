"""Convergence on MNIST (builtin:mnist5k, 32 px): the project's classifier Fréchet distance vs iterations
and vs training time for t-sgan (index and all pairs), sgan and rsgan.

Small nets so it fits a CPU: DCGAN-style G and E at base_channels 16 (the reference is 64), batch 64,
the reference's Adam (lr 2e-4, beta1 0.5) and 1:2 critic:generator steps. A checkpoint is kept every
--every iterations; after training each checkpoint's EMA generator is scored with
`tgan_deploy.metrics.evaluate` (classifier Fréchet distance and class coverage on --eval-n samples).
Training time per checkpoint comes from the trainer's own log (metrics.jsonl it_per_s), so evaluation
time is not counted.

    python experiments/convergence.py --quick
    python experiments/convergence.py --seeds 3 --steps 1500 --every 250

Results: OUT/convergence/{runs/*.json, summary.json, summary.md, convergence.png}. Resumable.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import (
    DEFAULT_OUT,
    RUNS_DIR,
    fmt,
    label,
    load_results,
    machine,
    mean_se,
    run_jobs,
    save_figure,
    train_run,
)

METHODS = [("t-sgan", "index"), ("t-sgan", "all"), ("sgan", "index"), ("rsgan", "index")]


def mnist_config(objective: str, pairing: str, *, steps: int, every: int, seed: int, out: Path,
                 lr: float = 2e-4, critic_steps: int = 1, generator_steps: int = 2) -> Any:
    """The small MNIST setup above; `lr` (G and critic alike) and the step ratio are the stability grid's axes."""
    from tgan_deploy.config import TrainConfig

    cfg = TrainConfig()
    cfg.apply_overrides({
        "model.arch": "dcgan", "model.resolution": 32, "model.channels": 1, "model.latent_dim": 64,
        "model.base_channels": 16, "model.head_hidden": 256, "model.spectral_norm": "faithful",
        "data.source": "builtin:mnist5k",
        "objective.name": objective, "objective.pairing": pairing, "objective.pair_impl": "auto",
        "optim.batch_size": 64, "optim.lr_g": lr, "optim.lr_d": lr, "optim.beta1": 0.5,
        "optim.critic_steps": critic_steps, "optim.generator_steps": generator_steps, "optim.ema_decay": 0.99,
        "run.steps": steps, "run.seed": seed, "run.out": str(out), "run.device": "cpu", "run.threads": 1,
        "run.eval_every": 0, "augment.policy": "none",  # scored from checkpoints afterwards; no augmentation
        "run.log_every": every, "run.sample_every": steps, "run.checkpoint_every": every, "run.keep_last": 1000,
        "run.on_divergence": "stop", "run.tensorboard": False,
    })
    return cfg


def classifier_scores(generator: Any, cfg: Any, n: int, seed: int) -> dict[str, float]:
    """`tgan_deploy.metrics.evaluate`'s scalar metrics: cfd (classifier Fréchet distance), class_coverage, ..."""
    from tgan_deploy.metrics.evaluate import evaluate

    return {k: float(v) for k, v in evaluate(generator, cfg, n=n, seed=seed)["metrics"].items()}


def fd_key(scores: dict[str, float]) -> str:
    return "cfd"


def job(objective: str, pairing: str, steps: int, every: int, seed: int, eval_n: int, run_dir: Path,
        lr: float = 2e-4, critic_steps: int = 1, generator_steps: int = 2) -> dict[str, Any]:
    from tgan_deploy.checkpoint import load_generator
    from tgan_deploy.run_layout import list_checkpoints
    from tgan_deploy.train.logging import read_metrics

    cfg = mnist_config(objective, pairing, steps=steps, every=every, seed=seed, out=run_dir, lr=lr,
                       critic_steps=critic_steps, generator_steps=generator_steps)
    result: dict[str, Any] = {"objective": objective, "pairing": pairing, "steps": steps, "seed": seed,
                              "every": every, "eval_n": eval_n, "lr": lr, "critic_steps": critic_steps,
                              "generator_steps": generator_steps}
    result |= train_run(cfg, run_dir / "experiment.log")
    # Training seconds at each logged step, from the trainer's own rate log (log_every == every).
    elapsed, last_step, clock = {}, 0, 0.0
    for record in read_metrics(run_dir):
        if "it_per_s" in record and record.get("step"):
            clock += (record["step"] - last_step) / max(record["it_per_s"], 1e-9)
            last_step = record["step"]
            elapsed[last_step] = clock
    curve = []
    for ckpt in list_checkpoints(run_dir):
        generator, ckpt_cfg, state = load_generator(ckpt, weights="ema")
        step = int(state["step"])
        scores = classifier_scores(generator, ckpt_cfg, eval_n, seed=0)
        curve.append({"step": step, "train_wall_s": elapsed.get(step, math.nan)} | scores)
    result["curve"] = curve
    return result


def summarise(results: list[dict[str, Any]], out: Path) -> None:
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    lines = ["# Convergence on MNIST (mnist5k, 32 px, base_channels 16): classifier Fréchet distance", "",
             f"Machine and date: {machine()}", "",
             "| method | seeds | iterations | final classifier FD | final class coverage | train wall s |",
             "|---|---|---|---|---|---|"]
    rows = []
    for objective, pairing in METHODS:
        rs = [r for r in results if r["objective"] == objective and r["pairing"] == pairing and r["curve"]]
        if not rs:
            continue
        key = fd_key(rs[0]["curve"][-1])
        cover = next((k for k in rs[0]["curve"][-1] if "cover" in k.lower()), None)
        fd = mean_se(r["curve"][-1][key] for r in rs)
        cov = mean_se(r["curve"][-1][cover] for r in rs) if cover else (math.nan, math.nan, 0)
        wall = mean_se(r["curve"][-1]["train_wall_s"] for r in rs)
        rows.append({"objective": objective, "pairing": pairing, "seeds": len(rs), "fd_key": key,
                     "final_fd": fd[:2], "final_coverage": cov[:2], "train_wall_s": wall[:2]})
        lines.append(f"| {label(objective, pairing)} | {len(rs)} | {rs[0]['steps']} | {fmt(fd[0], fd[1], 1)} | "
                     f"{fmt(cov[0], cov[1], 2)} | {fmt(wall[0], wall[1], 0)} |")
    write_json_atomic(out / "summary.json", {"machine": machine(), "rows": rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    plot(results, out)
    print("\n".join(lines))


def plot(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    results = [r for r in results if r["curve"]]
    if not results:
        return
    key = fd_key(results[0]["curve"][-1])
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(9, 3.5))
    colours = dict(zip(METHODS, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=True))
    for r in results:
        method = (r["objective"], r["pairing"])
        xs = [c["step"] for c in r["curve"]]
        ts = [c["train_wall_s"] for c in r["curve"]]
        ys = [c[key] for c in r["curve"]]
        lbl = label(*method) if r["seed"] == 0 else None
        ax_s.plot(xs, ys, color=colours[method], alpha=0.8, label=lbl, marker=".")
        ax_t.plot(ts, ys, color=colours[method], alpha=0.8, label=lbl, marker=".")
    ax_s.set_xlabel("iteration")
    ax_t.set_xlabel("training wall-clock s (shared 2-core CPU)")
    for ax in (ax_s, ax_t):
        ax.set_ylabel(f"classifier FD ({key})")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    save_figure(fig, out / "convergence.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 40 iterations, 1 seed")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (0 .. N-1)")
    parser.add_argument("--steps", type=int, default=1500, help="training iterations per run")
    parser.add_argument("--every", type=int, default=250, help="iterations between checkpoints / evaluations")
    parser.add_argument("--eval-n", type=int, default=2000, help="generated samples per evaluation")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes (1 thread each)")
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild summary/plots from results")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.every, args.eval_n, args.out = 1, 40, 20, 500, args.out / "quick"
    out = args.out / "convergence"
    jobs = []
    for seed in range(args.seeds):
        for objective, pairing in METHODS:
            name = f"{objective}__{pairing}__n{args.steps}__s{seed}"
            run_dir = RUNS_DIR / ("quick" if args.quick else "") / "convergence" / name
            jobs.append((out / "runs" / f"{name}.json", job,
                         (objective, pairing, args.steps, args.every, seed, args.eval_n, run_dir)))
    if not args.summarise_only:
        run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), out)


if __name__ == "__main__":
    main()

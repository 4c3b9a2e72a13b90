"""Stability: a grid of learning rates x critic:generator step ratios, per objective, on grid25 or on
MNIST; the fraction of runs that reach a quality threshold and the fraction that diverge.

    python experiments/stability.py --quick
    python experiments/stability.py                      # grid25; defaults: 3 seeds, lr 1e-4,1e-3, ratios 1:2,1:1,5:1
    python experiments/stability.py --dataset mnist --seeds 1 --steps 400 --lrs 2e-4,1e-3,5e-3 --ratios 1:2,1:1

Quality thresholds (fixed before the runs):
- grid25 (final raw generator, 2,500 samples): >= 20 of 25 modes AND >= 80 % HQ. Everything else is
  PacGAN's toy setup (experiments/_common.toy_config).
- mnist (final EMA generator, 1,000 samples): classifier Fréchet distance <= 20 AND >= 8 of 10 classes
  covered; the small MNIST setup of experiments/convergence.py. (At 400 iterations with the reference's
  lr 2e-4 and 1:2 steps every method of the convergence study ended between 7 and 37.)
Diverged: the trainer stopped on a NaN/Inf loss, gradient or weight (run.on_divergence "stop"); such a run
never reaches the threshold.
Results: OUT/stability (grid25) or OUT/stability_mnist: {runs/*.json, summary.json, summary.md, stability.png}.
Resumable.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import convergence
from experiments._common import (
    DEFAULT_OUT,
    RUNS_DIR,
    label,
    load_results,
    machine,
    run_jobs,
    save_figure,
    toy_job,
    variants,
)

MNIST_EVAL_N = 1000


@dataclasses.dataclass(frozen=True)
class Study:
    """What differs between the grid25 and the MNIST grid: the threshold, the per-run score, the job."""

    title: str
    threshold: str
    score: Callable[[dict[str, Any]], tuple[float, float]]  # (main metric, second metric) of a run
    score_names: str  # how the per-cell pairs read in the table
    passes: Callable[[float, float], bool]
    colour_metric: str
    colour_range: tuple[float, float]
    log_colour: bool = False  # colour by log10 of the metric (FDs span decades)
    is_toy: bool = False  # the 2-D MLP setup (its width is reported)


def toy_score(r: dict[str, Any]) -> tuple[float, float]:
    return r["modes"], r["hq_percent"]


def mnist_score(r: dict[str, Any]) -> tuple[float, float]:
    """(classifier FD, class coverage) of the final checkpoint; (nan, 0) when the run never got there."""
    final = r["curve"][-1] if r.get("curve") else None
    if r["diverged"] or final is None or final["step"] != r["steps"]:
        return math.nan, 0.0
    return final["cfd"], final["class_coverage"]


STUDIES = {
    "grid25": Study("grid25", ">= 20 modes and >= 80 % HQ", toy_score, "modes / HQ %",
                    lambda modes, hq: modes >= 20 and hq >= 80.0, "modes (of 25)", (0, 25), is_toy=True),
    "mnist": Study("MNIST (mnist5k, 32 px)", "classifier FD <= 20 and >= 8 of 10 classes", mnist_score,
                   "classifier FD / classes", lambda cfd, classes: cfd <= 20.0 and classes >= 8,
                   "classifier FD (log10)", (0.5, 2.5), log_colour=True),
}


def reached(r: dict[str, Any], study: Study) -> bool:
    return not r["diverged"] and study.passes(*study.score(r))


def summarise(results: list[dict[str, Any]], out: Path, study: Study) -> None:
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["objective"], r["pairing"]), []).append(r)
    rows = []
    for key in [v for v in variants() if v in groups]:
        rs = groups[key]
        cells = {}
        for r in rs:
            cell = f"lr {r['lr']:g}, {r['critic_steps']}:{r['generator_steps']}"
            cells.setdefault(cell, []).append(r)
        rows.append({"objective": key[0], "pairing": key[1], "runs": len(rs),
                     "reached": sum(reached(r, study) for r in rs), "diverged": sum(r["diverged"] for r in rs),
                     "cells": {c: {"runs": len(v), "reached": sum(reached(r, study) for r in v),
                                   "diverged": sum(r["diverged"] for r in v),
                                   "scores": [study.score(r) for r in v]}
                               for c, v in sorted(cells.items())}})
    steps = sorted({r["steps"] for r in results})
    widths = sorted({r.get("hidden", 400) for r in results})
    width = f"; MLP width {widths}" if study.is_toy else ""
    lines = [f"# Stability on {study.title}: learning rate x critic:generator ratio", "",
             f"Machine and date: {machine()}", "",
             f"Iterations per run: {steps}{width}. Threshold: {study.threshold}. Diverged: NaN/Inf stop.", "",
             f"| method | runs | reached threshold | diverged | per cell: {study.score_names} (lr, critic:generator) |",
             "|---|---|---|---|---|"]
    for row in rows:
        detail = "; ".join(f"{c}: " + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in v["scores"])
                           for c, v in row["cells"].items())
        lines.append(f"| {label(row['objective'], row['pairing'])} | {row['runs']} | "
                     f"{row['reached']}/{row['runs']} | {row['diverged']}/{row['runs']} | {detail} |")
    write_json_atomic(out / "summary.json", {"machine": machine(), "threshold": study.threshold, "rows": rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    plot(rows, out, study)
    print("\n".join(lines))


def plot(rows: list[dict[str, Any]], out: Path, study: Study) -> None:
    """Heat map of the main metric's mean per (method, cell); cells where every run diverged read 'NaN'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np


    if not rows:
        return
    cells = sorted({c for row in rows for c in row["cells"]})
    grid = np.full((len(rows), len(cells)), np.nan)
    for i, row in enumerate(rows):
        for j, c in enumerate(cells):
            if c in row["cells"]:
                values = [a for a, _ in row["cells"][c]["scores"]]
                grid[i, j] = float(np.nanmean(values)) if not np.isnan(values).all() else np.nan
    colours = np.log10(grid) if study.log_colour else grid
    fig, ax = plt.subplots(figsize=(1.4 * len(cells) + 2.5, 0.45 * len(rows) + 1.5))
    lo, hi = study.colour_range
    im = ax.imshow(colours, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cells)), cells, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [label(r["objective"], r["pairing"]) for r in rows], fontsize=7)
    for i, row in enumerate(rows):
        for j, c in enumerate(cells):
            cell = row["cells"].get(c)
            if cell:
                text = "NaN" if cell["diverged"] == cell["runs"] else f"{grid[i, j]:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label=f"{study.colour_metric}, mean over seeds")
    ax.set_title(f"{study.title}: {study.colour_metric} by learning rate and critic:generator steps", fontsize=8)
    save_figure(fig, out / "stability.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(STUDIES), default="grid25", help="which grid to run")
    parser.add_argument("--quick", action="store_true", help="smoke test: 100 iterations (mnist: 20), 1 seed, 2 cells")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (0 .. N-1)")
    parser.add_argument("--steps", type=int, default=2000, help="training iterations per run")
    parser.add_argument("--lrs", default="1e-4,1e-3", help="comma-separated learning rates (G and critic alike)")
    parser.add_argument("--ratios", default="1:2,1:1,5:1",
                        help="comma-separated critic:generator steps per iteration (the T-GAN reference is 1:2)")
    parser.add_argument("--hidden", type=int, default=400, help="grid25: MLP width of G and E (PacGAN: 400)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes (1 thread each)")
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild summary/plots from results")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.lrs, args.ratios, args.out = 1, "1e-3", "1:2,5:1", args.out / "quick"
        args.steps = 100 if args.dataset == "grid25" else 20
    lrs = [float(x) for x in args.lrs.split(",")]
    ratios = [tuple(int(n) for n in x.split(":")) for x in args.ratios.split(",")]
    folder = "stability" if args.dataset == "grid25" else f"stability_{args.dataset}"
    out = args.out / folder
    jobs = []
    for seed in range(args.seeds):
        for lr in lrs:
            for c, g in ratios:
                for objective, pairing in variants():
                    if args.dataset == "grid25":
                        name = f"{objective}__{pairing}__h{args.hidden}__lr{lr:g}__{c}to{g}__n{args.steps}__s{seed}"
                        fn, fn_args = toy_job, ("grid25", objective, pairing, args.steps, seed)
                        extra: tuple[Any, ...] = (lr, c, g, args.hidden)
                    else:  # one checkpoint, at the end: `every` = steps
                        name = f"{objective}__{pairing}__lr{lr:g}__{c}to{g}__n{args.steps}__s{seed}"
                        fn, fn_args = convergence.job, (objective, pairing, args.steps, args.steps, seed, MNIST_EVAL_N)
                        extra = (lr, c, g)
                    run_dir = RUNS_DIR / ("quick" if args.quick else "") / folder / name
                    jobs.append((out / "runs" / f"{name}.json", fn, (*fn_args, run_dir, *extra)))
    if not args.summarise_only:
        run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), out, STUDIES[args.dataset])


if __name__ == "__main__":
    main()

"""Stability on grid25: a grid of learning rates x critic:generator step ratios, per objective; the
fraction of runs that reach a quality threshold and the fraction that diverge.

    python experiments/stability.py --quick
    python experiments/stability.py                      # defaults: 3 seeds, lr 1e-4,1e-3, ratios 1:2,1:1,5:1

Quality threshold (grid25, final raw generator, 2,500 samples): >= 20 of 25 modes AND >= 80 % HQ.
Diverged: the trainer stopped on a NaN/Inf loss, gradient or weight (run.on_divergence "stop").
Everything else is PacGAN's toy setup (experiments/_common.toy_config). MNIST is not part of this script.
Results: OUT/stability/{runs/*.json, summary.json, summary.md, stability.png}. Resumable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import (
    DEFAULT_OUT,
    RUNS_DIR,
    label,
    load_results,
    machine,
    run_jobs,
    toy_job,
    variants,
)

DATASET = "grid25"
MIN_MODES = 20
MIN_HQ = 80.0


def reached(r: dict[str, Any]) -> bool:
    return not r["diverged"] and r["modes"] >= MIN_MODES and r["hq_percent"] >= MIN_HQ


def summarise(results: list[dict[str, Any]], out: Path) -> None:
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
                     "reached": sum(map(reached, rs)), "diverged": sum(r["diverged"] for r in rs),
                     "cells": {c: {"runs": len(v), "reached": sum(map(reached, v)),
                                   "diverged": sum(r["diverged"] for r in v),
                                   "modes": [r["modes"] for r in v], "hq_percent": [r["hq_percent"] for r in v]}
                               for c, v in sorted(cells.items())}})
    steps = sorted({r["steps"] for r in results})
    widths = sorted({r.get("hidden", 400) for r in results})
    lines = ["# Stability on grid25: learning rate x critic:generator ratio", "", f"Machine and date: {machine()}",
             "", f"Iterations per run: {steps}; MLP width {widths}. "
             f"Threshold: >= {MIN_MODES} modes and >= {MIN_HQ:g} % HQ. "
             "Diverged: NaN/Inf stop.", "",
             "| method | runs | reached threshold | diverged | per cell: modes / HQ % (lr, critic:generator) |",
             "|---|---|---|---|---|"]
    for row in rows:
        detail = "; ".join(f"{c}: " + ", ".join(f"{m:.0f}/{h:.0f}" for m, h in zip(v["modes"], v["hq_percent"],
                                                                                    strict=True))
                           for c, v in row["cells"].items())
        lines.append(f"| {label(row['objective'], row['pairing'])} | {row['runs']} | "
                     f"{row['reached']}/{row['runs']} | {row['diverged']}/{row['runs']} | {detail} |")
    write_json_atomic(out / "summary.json", {"machine": machine(), "threshold": {"min_modes": MIN_MODES,
                                             "min_hq_percent": MIN_HQ}, "rows": rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    plot(rows, out)
    print("\n".join(lines))


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """Heat map: mean modes per (method, cell); cells that diverged are marked 'NaN'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tgan_deploy.io import atomic_path

    if not rows:
        return
    cells = sorted({c for row in rows for c in row["cells"]})
    grid = np.full((len(rows), len(cells)), np.nan)
    for i, row in enumerate(rows):
        for j, c in enumerate(cells):
            if c in row["cells"]:
                grid[i, j] = float(np.mean(row["cells"][c]["modes"]))
    fig, ax = plt.subplots(figsize=(1.4 * len(cells) + 2.5, 0.45 * len(rows) + 1.5))
    im = ax.imshow(grid, vmin=0, vmax=25, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cells)), cells, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [label(r["objective"], r["pairing"]) for r in rows], fontsize=7)
    for i, row in enumerate(rows):
        for j, c in enumerate(cells):
            cell = row["cells"].get(c)
            if cell:
                text = "NaN" if cell["diverged"] == cell["runs"] else f"{grid[i, j]:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="modes (of 25), mean over seeds")
    ax.set_title("grid25: modes by learning rate and critic:generator steps", fontsize=8)
    fig.tight_layout()
    with atomic_path(out / "stability.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 100 iterations, 1 seed, 2 cells")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (0 .. N-1)")
    parser.add_argument("--steps", type=int, default=2000, help="training iterations per run")
    parser.add_argument("--lrs", default="1e-4,1e-3", help="comma-separated learning rates (G and critic alike)")
    parser.add_argument("--ratios", default="1:2,1:1,5:1",
                        help="comma-separated critic:generator steps per iteration (the T-GAN reference is 1:2)")
    parser.add_argument("--hidden", type=int, default=400, help="MLP width of G and E (PacGAN: 400)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes (1 thread each)")
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild summary/plots from results")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.lrs, args.ratios, args.out = 1, 100, "1e-3", "1:2,5:1", args.out / "quick"
    lrs = [float(x) for x in args.lrs.split(",")]
    ratios = [tuple(int(n) for n in x.split(":")) for x in args.ratios.split(",")]
    out = args.out / "stability"
    jobs = []
    for seed in range(args.seeds):
        for lr in lrs:
            for c, g in ratios:
                for objective, pairing in variants():
                    name = f"{objective}__{pairing}__h{args.hidden}__lr{lr:g}__{c}to{g}__n{args.steps}__s{seed}"
                    run_dir = RUNS_DIR / ("quick" if args.quick else "") / "stability" / name
                    jobs.append((out / "runs" / f"{name}.json", toy_job,
                                 (DATASET, objective, pairing, args.steps, seed, run_dir, lr, c, g, args.hidden)))
    if not args.summarise_only:
        run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), out)


if __name__ == "__main__":
    main()

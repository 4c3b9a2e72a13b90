"""2-D mixtures (ring8, grid25) under PacGAN's protocol: every objective, T-objectives with index and
all pairing, modes / HQ % / reverse KL as mean ± standard error over seeds, next to PacGAN's table.

    python experiments/toy_mixtures.py --quick          # smoke test: few hundred iterations, 1 seed
    python experiments/toy_mixtures.py                  # PacGAN's settings, 10 seeds, 20k iterations (defaults)
    python experiments/toy_mixtures.py --seeds 10 --steps 3000 --every 500 --lr 1e-4 --hidden 128  # the main table
    python experiments/toy_mixtures.py --seeds 1 --steps 20000 --every 2000 --lr 1e-4 --hidden 128 \
        --methods t-sgan:all,t-sgan:index,sgan --out experiments/results/long   # the longer goal check

Resumable: a run whose result JSON exists is skipped. Results: OUT/toy_mixtures/{runs/*.json,
summary.json, summary.md, *.png}. The protocol and the published numbers: docs/method.md §6.1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import (
    PACGAN_PUBLISHED,
    RUNS_DIR,
    common_args,
    fmt,
    label,
    load_results,
    machine,
    mean_se,
    run_jobs,
    save_figure,
    toy_job,
    toy_run_name,
    variants,
)

DATASETS = ["ring8", "grid25"]


def summarise(results: list[dict[str, Any]], out: Path, title: str) -> dict[str, Any]:
    """Mean ± SE per (dataset, objective, pairing, steps); writes summary.json, summary.md, scatter plots."""
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    groups: dict[tuple[str, str, str, int, int, float], list[dict[str, Any]]] = {}
    for r in results:
        key = (r["dataset"], r["objective"], r["pairing"], r["steps"], r.get("hidden", 400), r["lr"])
        groups.setdefault(key, []).append(r)
    rows = []
    order = {v: i for i, v in enumerate(variants())}
    for (dataset, objective, pairing, steps, hidden, lr), rs in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][4], kv[0][5], kv[0][3], order[kv[0][1:3]])):
        row: dict[str, Any] = {"dataset": dataset, "objective": objective, "pairing": pairing, "steps": steps,
                               "hidden": hidden, "lr": lr, "runs": len(rs), "diverged": sum(r["diverged"] for r in rs)}
        for key in ("modes", "hq_percent", "reverse_kl", "wall_s", "cpu_s"):
            row[key], row[key + "_se"], row[key + "_n"] = mean_se(r[key] for r in rs)
        rows.append(row)
    lines = [f"# {title}", "", f"Machine and date: {machine()}", ""]
    for dataset in DATASETS:
        lines += [f"## {dataset}", "", "| method | width | lr | iterations | runs | modes | HQ % | reverse KL | "
                  "diverged | CPU s / run |", "|---|---|---|---|---|---|---|---|---|---|"]
        for row in (r for r in rows if r["dataset"] == dataset):
            lines.append(f"| {label(row['objective'], row['pairing'])} | {row['hidden']} | {row['lr']:g} | "
                         f"{row['steps']} | {row['runs']} | "
                         f"{fmt(row['modes'], row['modes_se'], 1)} | {fmt(row['hq_percent'], row['hq_percent_se'], 1)}"
                         f" | {fmt(row['reverse_kl'], row['reverse_kl_se'], 2)} | {row['diverged']} | "
                         f"{row['cpu_s']:.0f} |")
        for name, (modes, hq, kl) in PACGAN_PUBLISHED[dataset].items():
            lines.append(f"| {name} (PacGAN paper) | 400 | 1e-4 | ~400000 | 10 | {modes} | {hq} | {kl} | | |")
        lines.append("")
    summary = {"machine": machine(), "rows": rows, "published": PACGAN_PUBLISHED}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    plot_scatters(results, out)
    plot_curves(results, out)
    print("\n".join(lines))
    return summary


def plot_scatters(results: list[dict[str, Any]], out: Path) -> None:
    """One panel per method: 500 generated points of seed 0's final generator over the mixture's centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tgan_deploy.data.toy import MIXTURES

    for dataset in DATASETS:
        chosen = {}
        for r in sorted(results, key=lambda r: (r["seed"], -r["steps"])):
            key = (r["objective"], r["pairing"])
            if r["dataset"] == dataset and "sample_points" in r and key not in chosen:
                chosen[key] = r
        if not chosen:
            continue
        order = [v for v in variants() if v in chosen]
        fig, axes = plt.subplots(1, len(order), figsize=(2.2 * len(order), 2.5), squeeze=False)
        lim = 1.5 if dataset == "ring8" else 5.5
        centres = MIXTURES[dataset].centres
        for ax, key in zip(axes[0], order, strict=True):
            r = chosen[key]
            pts = np.array(r["sample_points"])
            ax.scatter(centres[:, 0], centres[:, 1], s=12, c="tab:red", marker="x")
            ax.scatter(pts[:, 0], pts[:, 1], s=1, c="tab:blue", alpha=0.5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label(*key)}\n{r['modes']:.0f} modes, {r['hq_percent']:.0f}% HQ", fontsize=7)
        save_figure(fig, out / f"scatter_{dataset}.png")


def plot_curves(results: list[dict[str, Any]], out: Path) -> None:
    """Modes and HQ % vs iteration (mean over seeds) per method, for runs that kept intermediate checkpoints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np


    with_curves = [r for r in results if len(r.get("curve", [])) > 1]
    if not with_curves:
        return
    fig, axes = plt.subplots(2, len(DATASETS), figsize=(5 * len(DATASETS), 6.5), squeeze=False)
    for col, dataset in enumerate(DATASETS):
        for key in variants():
            rs = [r for r in with_curves if r["dataset"] == dataset and (r["objective"], r["pairing"]) == key]
            if not rs:
                continue
            steps = [c["step"] for c in rs[0]["curve"]]
            for row, metric in enumerate(("modes", "hq_percent")):
                values = np.array([[c[metric] for c in r["curve"]] for r in rs if len(r["curve"]) == len(steps)])
                style = "-" if key[0].startswith("t-") else "--"
                axes[row][col].plot(steps, values.mean(axis=0), style, marker=".", label=label(*key))
        axes[0][col].set_title(f"{dataset}: modes covered (mean over seeds)", fontsize=9)
        axes[1][col].set_title(f"{dataset}: high-quality samples %", fontsize=9)
        for row in range(2):
            axes[row][col].set_xlabel("iteration (1 critic + 2 generator steps)")
        axes[0][col].legend(fontsize=6)
    save_figure(fig, out / "curves.png")


def main() -> None:
    args = common_args(__doc__.splitlines()[0], default_seeds=10, default_steps=20000, quick_steps=200, toy=True)
    out = args.out / "toy_mixtures"
    jobs = []
    for seed in range(args.seeds):  # seed-major: a cut-short session still has every method at seed 0
        for dataset in DATASETS:
            for objective, pairing in args.methods:
                name = toy_run_name(dataset, objective, pairing, args.hidden, args.lr, args.steps, seed)
                run_dir = RUNS_DIR / ("quick" if args.quick else "") / "toy_mixtures" / name
                jobs.append((out / "runs" / f"{name}.json", toy_job,
                             (dataset, objective, pairing, args.steps, seed, run_dir, args.lr, 1, 2, args.hidden,
                              args.every)))
    if not args.summarise_only:
        run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), out, "2-D mixtures (PacGAN protocol): every objective")


if __name__ == "__main__":
    main()

"""Fine-tuning a StyleGAN2 with a T-GAN objective (issue 27): a stylegan2 trained on MNIST digits 0-4, fine-tuned
on 500 images of 5-9 with t-sgan + ADA (`tgan-train --init-from PARENT --augment ada`), against the same run from
scratch: FD against iterations.

1. Parent: `tgan-train --arch stylegan2` (32 px preset) on the digits 0-4 of builtin:mnist5k, --parent-steps.
2. Target: 500 digits 5-9 (a fixed seeded subset, an .npz), t-sgan, --augment ada, --steps iterations,
   --seeds seeds, from the parent (--init-from) and from scratch; optionally --freeze-d N as well.
3. Score: Fréchet distance in the project's digit classifier's features between the EMA generator's --eval-n
   samples and ALL digits 5-9 of builtin:mnist5k (the 500 training images and the rest), every --every iterations.

    python experiments/stylegan2_finetune.py            # ~2.5 CPU hours (2 workers: ~1.5 h)
    python experiments/stylegan2_finetune.py --quick    # smoke test (~2 min)

Results: OUT/stylegan2_finetune/{runs/*.json, summary.json, summary.md, fd_curves.png}. Resumable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import (
    DEFAULT_OUT,
    RUNS_DIR,
    fmt,
    load_results,
    machine,
    mean_se,
    run_jobs,
    save_figure,
    train_run,
)
from experiments.stylegan2_compare import user_config

TARGET_SIZE = 500


def write_digit_sets(folder: Path) -> dict[str, Path]:
    """.npz files: every digit 0-4 (the parent's data), 500 seeded digits 5-9 (the target), all 5-9 (reference)."""
    from tgan_deploy.data.builtins import mnist5k_arrays

    images, labels = mnist5k_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    low, high = np.flatnonzero(labels < 5), np.flatnonzero(labels >= 5)
    target = np.random.default_rng(0).choice(high, TARGET_SIZE, replace=False)
    paths = {name: folder / f"{name}.npz" for name in ("digits0-4", "digits5-9_500", "digits5-9_all")}
    for name, rows in (("digits0-4", low), ("digits5-9_500", np.sort(target)), ("digits5-9_all", high)):
        if not paths[name].exists():
            np.savez(paths[name], images=images[rows])
    return paths


def fd_to_reference(run_dir: Path, reference: Path, eval_n: int) -> list[dict[str, float]]:
    """Classifier-feature Fréchet distance of every kept checkpoint's EMA generator to the reference digits."""
    import torch

    from tgan_deploy.checkpoint import load_generator
    from tgan_deploy.metrics.classifier import load_classifier
    from tgan_deploy.metrics.evaluate import generate
    from tgan_deploy.metrics.frechet import frechet_distance_features
    from tgan_deploy.run_layout import list_checkpoints

    clf = load_classifier("mnist5k")
    real = torch.from_numpy(np.load(reference)["images"]).float().div(127.5).sub(1.0)
    real_f, _ = clf.features_and_logits(real[:, None] if real.ndim == 3 else real)
    curve = []
    for ckpt in list_checkpoints(run_dir):
        generator, cfg, state = load_generator(ckpt)
        fake_f, _ = clf.features_and_logits(generate(generator, cfg.model.latent_dim, eval_n, seed=0))
        curve.append({"step": int(state["step"]), "fd": float(frechet_distance_features(real_f, fake_f))})
    return curve


def parent_job(data: Path, steps: int, run_dir: Path) -> dict[str, Any]:
    cfg = user_config({"model.arch": "stylegan2", "data.source": str(data), "model.resolution": 32},
                      steps=steps, seed=0, out=run_dir, every=steps)
    return {"parent": True, "steps": steps, "run_dir": str(run_dir)} | train_run(cfg, run_dir / "experiment.log")


def job(start: str, parent: Path | None, data: dict[str, Path], steps: int, every: int, seed: int, eval_n: int,
        freeze_d: int, run_dir: Path) -> dict[str, Any]:
    overrides: dict[str, Any] = {"model.arch": "stylegan2", "data.source": str(data["digits5-9_500"]),
                                 "model.resolution": 32, "objective.name": "t-sgan", "augment.policy": "ada"}
    if parent is not None:
        overrides |= {"run.init_from": str(parent), "optim.freeze_d": freeze_d}
    cfg = user_config(overrides, steps=steps, seed=seed, out=run_dir, every=every)
    result: dict[str, Any] = {"start": start, "steps": steps, "seed": seed, "freeze_d": freeze_d} | train_run(
        cfg, run_dir / "experiment.log")
    result["curve"] = fd_to_reference(run_dir, data["digits5-9_all"], eval_n)
    return result


def summarise(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tgan_deploy.io import write_json_atomic, write_text_atomic

    lines = ["# Fine-tuning a StyleGAN2 with t-sgan + ADA: 500 digits 5-9", "", f"Machine and date: {machine()}", "",
             "FD = Fréchet distance in the project's digit classifier's features between the EMA generator's samples "
             "and all digits 5-9 of builtin:mnist5k; mean ± s.e. over seeds; lower is better.", ""]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    rows = []
    for start in sorted({r["start"] for r in results}):
        runs = [r for r in results if r["start"] == start and r["curve"]]
        steps = sorted({p["step"] for r in runs for p in r["curve"]})
        means = [mean_se(p["fd"] for r in runs for p in r["curve"] if p["step"] == s) for s in steps]
        ax.plot(steps, [m[0] for m in means], marker="o", label=start)
        rows.append({"start": start, "seeds": len(runs), "steps": steps, "fd": [m[:2] for m in means]})
    if rows:
        lines += ["| start | seeds | " + " | ".join(f"FD @ {s}" for s in rows[0]["steps"]) + " |",
                  "|---|---|" + "---|" * len(rows[0]["steps"])]
        lines += [f"| {r['start']} | {r['seeds']} | " + " | ".join(fmt(m, se, 1) for m, se in r["fd"]) + " |"
                  for r in rows]
    ax.set_xlabel("iteration")
    ax.set_ylabel("FD to digits 5-9 (lower is better)")
    ax.set_yscale("log")
    ax.legend()
    save_figure(fig, out / "fd_curves.png")
    write_json_atomic(out / "summary.json", {"machine": machine(), "rows": rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: a few iterations, 1 seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--parent-steps", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--evals", type=int, default=6)
    parser.add_argument("--eval-n", type=int, default=2500)
    parser.add_argument("--freeze-d", type=int, default=0, help="also FreezeD N for the fine-tuned runs (0: off)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.parent_steps, args.steps, args.evals, args.eval_n = 1, 4, 4, 2, 200
        args.out = args.out / "quick"
    out = args.out / "stylegan2_finetune"
    runs = RUNS_DIR / ("quick" if args.quick else "") / "stylegan2_finetune"
    data = write_digit_sets(runs / "data")
    parent_dir = runs / f"parent__it{args.parent_steps}"
    run_jobs([(out / "parent.json", parent_job, (data["digits0-4"], args.parent_steps, parent_dir))], 1)
    every = args.steps // args.evals
    jobs = []
    for start, parent in (("from the 0-4 parent", parent_dir), ("from scratch", None)):
        for seed in range(args.seeds):
            name = f"{'parent' if parent else 'scratch'}__fd{args.freeze_d}__it{args.steps}__s{seed}"
            jobs.append((out / "runs" / f"{name}.json", job,
                         (start, parent, data, args.steps, every, seed, args.eval_n, args.freeze_d, runs / name)))
    run_jobs(jobs, args.workers)
    summarise(load_results(out / "runs"), out)


if __name__ == "__main__":
    main()

"""Why the conditional StyleGAN2 misses the DCGAN's conditional accuracy (issue 27): one setting changed at a time.

Every run is the command a user types, `tgan-train --data builtin:mnist5k --arch stylegan2 --conditional
--steps 500 --eval-every 250` (one thread), plus the one change in VARIANTS; two DCGAN rows (its defaults, and
its defaults with StyleGAN2's optimiser) for reference. Per run: the trainer's own evaluations at
250 and 500 iterations (EMA generator: classifier FD, classes covered, conditional accuracy) and the mean critic
loss over iterations 250-500 from metrics.jsonl (t-sgan's critic loss at chance is 2 ln 2 = 1.386; near 0 the
critic separates every pair).

    python experiments/stylegan2_sweep.py              # ~35 min with 2 workers
    python experiments/stylegan2_sweep.py --only base  # one row

Results: OUT/stylegan2_sweep/{summary.json, summary.md}; runs in experiments/runs/stylegan2_sweep/ (a run whose
metrics.jsonl already holds its last evaluation is read, not re-run).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import DEFAULT_OUT, RUNS_DIR, machine

EVAL_EVERY = 250
# The settings StyleGAN2-ADA's auto config gives at 32 px, batch 32 (the stylegan2 preset before this sweep; the
# preset has since taken G lr 0.01 and R1 gamma 10 at <= 32 px, the "R1 gamma 10, G lr 1e-2" row): every stylegan2
# row starts from these and changes what it names.
ADA_AUTO = {"optim.lr_g": 0.0025, "optim.lr_d": 0.0025, "objective.r1_gamma": 0.0064}
SG2_OPTIMISER = {"optim.lr_g": 0.0025, "optim.lr_d": 0.0025, "optim.beta1": 0, "optim.beta2": 0.99,
                 "optim.batch_size": 32}

# name -> (what changed, architecture, config changes, other tgan-train arguments)
VARIANTS: dict[str, tuple[str, str, dict[str, Any], list[str]]] = {
    "base": ("stylegan2, StyleGAN2-ADA's auto settings (G and critic lr 0.0025, R1 gamma 0.0064)", "stylegan2", {}, []),
    "sgan": ("StyleGAN2's own loss (--objective sgan)", "stylegan2", {}, ["--objective", "sgan"]),
    "lr1e-3": ("G and critic lr 1e-3", "stylegan2", {"optim.lr_g": 0.001, "optim.lr_d": 0.001}, []),
    "lr1e-2": ("G and critic lr 1e-2", "stylegan2", {"optim.lr_g": 0.01, "optim.lr_d": 0.01}, []),
    "glr1e-3": ("G lr 1e-3", "stylegan2", {"optim.lr_g": 0.001}, []),
    "glr1e-2": ("G lr 1e-2", "stylegan2", {"optim.lr_g": 0.01}, []),
    "dlr1e-3": ("critic lr 1e-3", "stylegan2", {"optim.lr_d": 0.001}, []),
    "r1-0.1": ("R1 gamma 0.1", "stylegan2", {"objective.r1_gamma": 0.1}, []),
    "r1-10": ("R1 gamma 10", "stylegan2", {"objective.r1_gamma": 10}, []),
    "r1-10-glr1e-2": ("**R1 gamma 10, G lr 1e-2** (the preset since)", "stylegan2",
                      {"objective.r1_gamma": 10, "optim.lr_g": 0.01}, []),
    "mbstd32": ("minibatch-std groups of 32 (4)", "stylegan2", {"model.mbstd_group_size": 32}, []),
    "mbstd1": ("minibatch std off (groups of 1)", "stylegan2", {"model.mbstd_group_size": 1}, []),
    "map1": ("mapping lr multiplier 1 (0.01)", "stylegan2", {"model.mapping_lr_multiplier": 1}, []),
    "dcgan": ("DCGAN, the defaults", "dcgan", {}, []),
    "dcgan-sg2opt": ("DCGAN with StyleGAN2's optimiser (lr 0.0025, betas (0, 0.99), batch 32)", "dcgan",
                     SG2_OPTIMISER, []),
}


def arguments(arch: str, changes: dict[str, Any], extra: list[str]) -> list[str]:
    """tgan-train arguments of a row: stylegan2 rows state ADA_AUTO and their changes over it."""
    values = (ADA_AUTO if arch == "stylegan2" else {}) | changes
    return [*(["--arch", arch] if arch != "dcgan" else []), *extra,
            *[part for key, value in values.items() for part in ("--set", f"{key}={value}")]]


def evaluations(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(evaluation rows, training-log rows) of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "eval/cfd" in r], [r for r in rows if "d_loss" in r]


def train(extra: list[str], steps: int, run_dir: Path) -> None:
    """The user's command, one thread, its output to run_dir.log."""
    done, _ = evaluations(run_dir) if (run_dir / "metrics.jsonl").exists() else ([], [])
    if any(r["step"] == steps for r in done):
        return
    command = [sys.executable, "-m", "tgan_deploy.train", "--data", "builtin:mnist5k", "--conditional",
               "--steps", str(steps), "--out", str(run_dir), "--eval-every", str(EVAL_EVERY), "--force",
               "--set", "run.threads=1", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(run_dir.with_suffix(".log"), "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=True)


def row(name: str, what: str, run_dir: Path, steps: int) -> dict[str, Any]:
    evals, logs = evaluations(run_dir)
    late = [r["d_loss"] for r in logs if EVAL_EVERY <= r["step"] <= steps]
    return {"name": name, "what": what,
            "evals": {int(r["step"]): {k.removeprefix("eval/"): r[k] for k in
                                       ("eval/cfd", "eval/class_coverage", "eval/conditional_accuracy")}
                      for r in evals if r["step"] <= steps},
            "critic_loss_late": sum(late) / len(late) if late else None}


def summarise(rows: list[dict[str, Any]], steps: int, out: Path) -> None:
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    lines = ["# Conditional StyleGAN2 on builtin:mnist5k: one change at a time", "", f"Machine and date: {machine()}",
             "", f"`tgan-train --data builtin:mnist5k --conditional --steps {steps} --eval-every {EVAL_EVERY}` "
             "(--arch stylegan2 unless the row says DCGAN) + the change; the trainer's evaluations of the EMA "
             "generator (1,000 samples): CFD, classes covered, conditional accuracy (chance 0.10); critic loss: "
             f"mean over iterations {EVAL_EVERY}-{steps} (2 ln 2 = 1.386 is a critic at chance). One seed.", "",
             "| change | CFD 250 | CFD 500 | classes 500 | cond. acc. 250 | cond. acc. 500 | critic loss |",
             "|---|---|---|---|---|---|---|"]
    def cell(evals: dict[int, dict[str, float]], step: int, key: str, form: str) -> str:
        return form.format(evals[step][key]) if step in evals else "–"

    for r in rows:
        e = r["evals"]
        loss = f"{r['critic_loss_late']:.3f}" if r["critic_loss_late"] is not None else "–"
        lines.append(f"| {r['what']} | {cell(e, 250, 'cfd', '{:.1f}')} | {cell(e, 500, 'cfd', '{:.1f}')} | "
                     f"{cell(e, 500, 'class_coverage', '{:.0f}')} | {cell(e, 250, 'conditional_accuracy', '{:.3f}')} | "
                     f"{cell(e, 500, 'conditional_accuracy', '{:.3f}')} | {loss} |")
    write_json_atomic(out / "summary.json", {"machine": machine(), "steps": steps, "rows": rows})
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="these rows only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    names = args.only or list(VARIANTS)
    runs = RUNS_DIR / "stylegan2_sweep"
    runs.mkdir(parents=True, exist_ok=True)
    with futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        jobs = [pool.submit(train, arguments(*VARIANTS[n][1:]), args.steps, runs / n) for n in names]
        for fut in futures.as_completed(jobs):
            fut.result()
    summarise([row(n, VARIANTS[n][0], runs / n, args.steps) for n in names], args.steps,
              args.out / "stylegan2_sweep")


if __name__ == "__main__":
    main()

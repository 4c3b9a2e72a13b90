"""Shared pieces of the experiment scripts: configs, one training run in a worker process, the 2-D
mixture metrics, resumable parallel execution and mean ± standard error summaries.

Every run trains with the project's own trainer (`tgan_deploy.train.loop.train`); this module only
builds configs, runs them two at a time (torch.set_num_threads(1) each) and scores the result.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import math
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "experiments" / "results"
RUNS_DIR = ROOT / "experiments" / "runs"  # training run directories (checkpoints): git-ignored ("runs/")

BASELINES = ["sgan", "rsgan", "rasgan", "wgan-gp", "hinge"]
T_OBJECTIVES = ["t-sgan", "t-wgan"]
PAIRINGS = ["index", "all"]

# PacGAN (arXiv:1712.04086) Table, as restated in docs/method.md §6.1: (modes, HQ %, reverse KL).
PACGAN_PUBLISHED: dict[str, dict[str, tuple[float, float, float]]] = {
    "ring8": {"GAN": (6.3, 98.2, 0.45), "PacGAN4": (7.8, 95.9, 0.07)},
    "grid25": {"GAN": (17.3, 94.8, 0.70), "ALI": (24.1, 95.7, 0.14), "PacGAN4": (24.8, 93.6, 0.04)},
}


def variants() -> list[tuple[str, str]]:
    """(objective, pairing) for every objective; T-objectives once per pairing, baselines 'index'."""
    return [(o, "index") for o in BASELINES] + [(o, p) for o in T_OBJECTIVES for p in PAIRINGS]


def label(objective: str, pairing: str) -> str:
    return f"{objective} ({pairing})" if objective.startswith("t-") else objective


# -- configs --------------------------------------------------------------------------------------

def toy_config(dataset: str, objective: str, pairing: str, *, steps: int, seed: int, out: Path,
               lr: float = 1e-4, critic_steps: int = 1, generator_steps: int = 2, hidden: int = 400,
               on_divergence: str = "stop", checkpoint_every: int | None = None) -> Any:
    """PacGAN's setup (MLP G 2->400x4->2 BN+ReLU, z 2-d, lr 1e-4, beta1 0.8, batch 100) in our trainer.

    Deviations, all stated in docs/results.md: the critic is the project's T-GAN critic E+D (E: MLP
    2->H->H LeakyReLU, D: the pair head), shared by every objective; no generator EMA (PacGAN evaluates
    the raw generator); critic:generator 1:2 per iteration (the T-GAN reference) unless told otherwise.
    Spectral norm only where the objective needs it as its Lipschitz constraint (t-wgan, per the
    reference): PacGAN's D has none, and with SN on every critic the SGAN-type critics stayed at chance
    level on these 2-D data (critic loss 2 ln 2 after 3,000 iterations; see docs/results.md).
    """
    from tgan_deploy.config import TrainConfig
    from tgan_deploy.train.presets import toy_spectral_norm

    cfg = TrainConfig()
    cfg.apply_overrides({
        "model.arch": "mlp", "model.latent_dim": 2, "model.toy_hidden": hidden, "model.toy_depth": 4,
        "model.spectral_norm": toy_spectral_norm(objective),
        "data.source": f"builtin:{dataset}",
        "objective.name": objective, "objective.pairing": pairing, "objective.pair_impl": "auto",
        "optim.batch_size": 100, "optim.lr_g": lr, "optim.lr_d": lr, "optim.beta1": 0.8, "optim.beta2": 0.999,
        "optim.critic_steps": critic_steps, "optim.generator_steps": generator_steps, "optim.ema_decay": 0.0,
        "run.steps": steps, "run.seed": seed, "run.out": str(out), "run.device": "cpu", "run.threads": 1,
        "run.eval_every": 0, "augment.policy": "none",  # scored from checkpoints afterwards; no augmentation
        "run.log_every": 50, "run.sample_every": steps, "run.checkpoint_every": checkpoint_every or steps,
        "run.keep_last": 1000 if checkpoint_every else 1, "run.on_divergence": on_divergence,
        "run.tensorboard": False,
    })
    return cfg


# -- one training run -----------------------------------------------------------------------------

def train_run(cfg: Any, log_path: Path) -> dict[str, Any]:
    """Train `cfg` from scratch with the project trainer; stdout/stderr go to `log_path`.

    Returns {"wall_s", "cpu_s", "diverged", "error"}. A DivergenceError (run.on_divergence "stop")
    is a result (diverged True), not a failure of the experiment.
    """
    import torch

    from tgan_deploy.train.loop import DivergenceError, train

    torch.set_num_threads(1)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"diverged": False, "error": None}
    with redirect_output(log_path):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            train(cfg, force=True)
        except DivergenceError as exc:
            result["diverged"] = True
            result["error"] = str(exc)
        result["wall_s"] = time.perf_counter() - wall
        result["cpu_s"] = time.process_time() - cpu
    return result


class redirect_output:
    """Point file descriptors 1 and 2 at a log file (progress bars of parallel runs would interleave)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.file = open(self.path, "w")
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.file.close()


# -- 2-D mixture metrics (PacGAN's protocol, docs/method.md §6.1) ---------------------------------

def toy_samples(generator: Any, n: int, seed: int) -> np.ndarray:
    """n points from G (eval mode) for latent seeds seed*n .. seed*n+n-1 (runtime.latents' contract)."""
    import torch

    from tgan_deploy.runtime.latents import latents

    z = torch.from_numpy(latents(range(seed * n, seed * n + n), generator.latent_dim))
    with torch.no_grad():
        return generator(z).numpy().astype(np.float64)


def mixture_scores(points: np.ndarray, dataset: str) -> dict[str, float]:
    """Modes / HQ % / reverse KL by the project's PacGAN metric (tgan_deploy.metrics.toy2d)."""
    from tgan_deploy.data.toy import MIXTURES
    from tgan_deploy.metrics.toy2d import mode_metrics

    m = mode_metrics(points, MIXTURES[dataset])
    return {"modes": float(m.modes), "hq_percent": m.hq_percent, "reverse_kl": m.reverse_kl}


# -- plots ----------------------------------------------------------------------------------------

def save_figure(fig: Any, path: Path) -> None:
    """Lay out, write atomically as PNG (110 dpi) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    from tgan_deploy.io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# -- running many jobs ----------------------------------------------------------------------------

def run_jobs(jobs: list[tuple[Path, Callable[..., dict[str, Any]], tuple[Any, ...]]], workers: int = 2) -> None:
    """Run `fn(*args)` for each (result_json, fn, args) whose result JSON does not exist yet (resumable),
    `workers` processes at a time; each result is written atomically as soon as its run ends."""
    from tgan_deploy.io import write_json_atomic

    todo = [(path, fn, args) for path, fn, args in jobs if not path.exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already done; running {len(todo)} with {workers} workers",
          flush=True)
    start = time.perf_counter()
    with futures.ProcessPoolExecutor(max_workers=workers) as pool:
        pending = {pool.submit(_guarded, fn, args): path for path, fn, args in todo}
        for done, fut in enumerate(futures.as_completed(pending), 1):
            path = pending[fut]
            result = fut.result()
            if "exception" in result:
                print(f"[{done}/{len(todo)}] FAILED {path.name}: {result['exception']}", flush=True)
                continue
            write_json_atomic(path, result)
            brief = {k: result.get(k) for k in ("modes", "hq_percent", "reverse_kl", "diverged", "wall_s")
                     if k in result}
            print(f"[{done}/{len(todo)}] {path.name} {brief} ({time.perf_counter() - start:.0f} s)", flush=True)


def _guarded(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # a broken run is reported, the others go on
        return {"exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def load_results(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def mean_se(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean and standard error (sample std / sqrt(n)) of the finite values; (nan, nan, 0) if none."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, 0
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se, len(v)


def fmt(mean: float, se: float, digits: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


def machine() -> dict[str, Any]:
    import torch

    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "note": "2 cores shared with other jobs while these runs ran; wall-clock times are noisy, "
                    "CPU times (process_time, 1 thread) are the fairer cost measure"}


def toy_run_name(dataset: str, objective: str, pairing: str, hidden: int, lr: float, steps: int, seed: int) -> str:
    return f"{dataset}__{objective}__{pairing}__h{hidden}__lr{lr:g}__n{steps}__s{seed}"


def common_args(description: str, default_seeds: int, default_steps: int, quick_steps: int,
                toy: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {quick_steps} iterations, 1 seed, results under OUT/quick")
    parser.add_argument("--seeds", type=int, default=default_seeds, help="seeds per configuration (0 .. N-1)")
    parser.add_argument("--steps", type=int, default=default_steps, help="training iterations per run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (JSON, summaries, plots)")
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes (1 thread each)")
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild summary/plots from results")
    if toy:
        parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of G and critic (PacGAN: 1e-4)")
        parser.add_argument("--hidden", type=int, default=400, help="MLP width of G and E (PacGAN: 400)")
        parser.add_argument("--every", type=int, default=None,
                            help="also score a checkpoint every N iterations (curves); default: only the last")
        parser.add_argument("--methods", default=None,
                            help="comma-separated objective:pairing to run, e.g. t-sgan:all,sgan:index (default: all)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.out = 1, quick_steps, args.out / "quick"
    if toy:
        args.methods = parse_methods(parser, args.methods)
    return args


def parse_methods(parser: argparse.ArgumentParser, spec: str | None) -> list[tuple[str, str]]:
    """`--methods` -> [(objective, pairing)] in variants() order; None means every variant."""
    if spec is None:
        return variants()
    wanted = {tuple(item.strip().split(":", 1)) if ":" in item else (item.strip(), "index")
              for item in spec.split(",") if item.strip()}
    unknown = wanted - set(variants())
    if unknown:
        known = ", ".join(f"{o}:{p}" for o, p in variants())
        parser.error(f"--methods: unknown {', '.join(sorted(':'.join(u) for u in unknown))}; choose from {known}")
    return [v for v in variants() if v in wanted]


def remove_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def toy_job(dataset: str, objective: str, pairing: str, steps: int, seed: int, run_dir: Path,
            lr: float = 1e-4, critic_steps: int = 1, generator_steps: int = 2, hidden: int = 400,
            every: int | None = None) -> dict[str, Any]:
    """Train one 2-D mixture run; score every kept checkpoint (one each `every` iterations, else only the
    last) on 2,500 samples of the raw generator. The final scores are the last checkpoint's."""
    from tgan_deploy.checkpoint import load_generator
    from tgan_deploy.run_layout import is_run_dir, list_checkpoints
    from tgan_deploy.train.presets import toy_spectral_norm

    cfg = toy_config(dataset, objective, pairing, steps=steps, seed=seed, out=run_dir, lr=lr,
                     critic_steps=critic_steps, generator_steps=generator_steps, hidden=hidden,
                     checkpoint_every=every)
    result: dict[str, Any] = {"dataset": dataset, "objective": objective, "pairing": pairing, "steps": steps,
                              "seed": seed, "lr": lr, "hidden": hidden, "critic_steps": critic_steps,
                              "generator_steps": generator_steps, "batch_size": 100,
                              "spectral_norm": toy_spectral_norm(objective)}
    result |= train_run(cfg, run_dir / "experiment.log")
    result["curve"] = []
    checkpoints = list_checkpoints(run_dir) if is_run_dir(run_dir) else []
    for ckpt in checkpoints:
        generator, _, state = load_generator(ckpt, weights="raw")
        result["curve"].append({"step": int(state["step"])} | mixture_scores(toy_samples(generator, 2500, 0), dataset))
    if result["diverged"] or not checkpoints or result["curve"][-1]["step"] != steps:
        result |= {"modes": 0.0, "hq_percent": 0.0, "reverse_kl": math.nan}  # no final generator: scored as failed
    else:
        result |= {k: v for k, v in result["curve"][-1].items() if k != "step"}
        result["sample_points"] = np.round(toy_samples(generator, 500, 1), 3).tolist()  # for the scatter plots
    return result

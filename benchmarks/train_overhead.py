"""Trainer overhead: tgan_deploy.train's time per iteration against a bare loop doing the same training math.

The bare loop is written as plainly as possible: the same models, objective, batches (the same data
stream) and Adam steps, without what the trainer adds (divergence guard with its per-step sync and
gradient norms, EMA, metrics, progress bar, the global-batch scorer wrapper). Both run in this process
with one intra-op thread. Time per iteration = (CPU time of a long run - CPU time of a short run) /
(difference in iterations): setup, warm-up and the end-of-run checkpoint/samples cancel out, and CPU time
(time.process_time) is far less disturbed than wall time on a machine shared with other jobs. Runs are
interleaved (trainer short, bare short, trainer long, bare long, repeat) and medians reported. Periodic
checkpoints and sample grids are excluded (every run.checkpoint_every / run.sample_every iterations).

    PYTHONPATH=. python benchmarks/train_overhead.py [--rounds 5]
Writes benchmarks/results/train-overhead.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tgan_deploy.config import TrainConfig
from tgan_deploy.data import load_dataset, make_loader
from tgan_deploy.models import build_critic, build_generator
from tgan_deploy.objectives import get_objective, scores
from tgan_deploy.train.loop import train

RESULTS = Path(__file__).parent / "results"
CASES = {
    # name: (config, short run iterations, long run iterations)
    "toy-mlp (grid25, hidden 128, batch 64)": (
        {"model": {"arch": "mlp", "latent_dim": 2, "toy_hidden": 128, "toy_depth": 4, "head_hidden": 128},
         "data": {"source": "builtin:grid25"}, "optim": {"batch_size": 64}}, 50, 250),
    "dcgan-32px (mnist5k, base 8, batch 16)": (
        {"model": {"resolution": 32, "channels": 1, "base_channels": 8, "latent_dim": 32, "head_hidden": 64},
         "data": {"source": "builtin:mnist5k"}, "optim": {"batch_size": 16}}, 10, 60),
}


def config(base: dict, steps: int, out: str) -> TrainConfig:
    cfg = TrainConfig.from_dict(base)
    cfg.run.steps, cfg.run.log_every, cfg.run.out = steps, 10, out
    cfg.run.sample_every = cfg.run.checkpoint_every = 10**9  # only at the very end, outside the timed intervals
    cfg.run.threads, cfg.run.device, cfg.run.tensorboard = 1, "cpu", False
    return cfg


def trainer_cpu_seconds(cfg: TrainConfig) -> float:
    start = time.process_time()
    train(cfg, force=True)
    return time.process_time() - start


def bare_cpu_seconds(cfg: TrainConfig) -> float:
    start = time.process_time()
    bare_loop(cfg)
    return time.process_time() - start


def bare_loop(cfg: TrainConfig) -> None:
    """The same training, written plainly."""
    torch.manual_seed(cfg.run.seed)
    G, critic = build_generator(cfg.model), build_critic(cfg.model)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr_g, betas=(cfg.optim.beta1, cfg.optim.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.optim.lr_d, betas=(cfg.optim.beta1, cfg.optim.beta2))
    objective = get_objective(cfg.objective.name)
    data = make_loader(load_dataset(cfg.data.source, cfg.model, cfg.data), cfg.optim.batch_size, seed=cfg.run.seed)
    batches = data.batches(0)
    b, dim = cfg.optim.batch_size, cfg.model.latent_dim
    for _ in range(cfg.run.steps):
        for _ in range(cfg.optim.critic_steps):
            x_real = next(batches)
            with torch.no_grad():
                x_fake = G(torch.randn(b, dim))
            d_loss = objective.critic_loss(*scores(objective, critic, x_real, x_fake, cfg.objective.pairing))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        critic.requires_grad_(False)
        for _ in range(cfg.optim.generator_steps):
            x_real = next(batches)
            g_loss = objective.generator_loss(*scores(objective, critic, x_real, G(torch.randn(b, dim)),
                                                      cfg.objective.pairing))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        critic.requires_grad_(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (base, short, long) in CASES.items():
            short_cfg, long_cfg = (config(base, n, str(Path(tmp) / "run")) for n in (short, long))
            trainer, bare = [], []
            for _ in range(args.rounds):  # interleaved
                t_short, b_short = trainer_cpu_seconds(short_cfg), bare_cpu_seconds(short_cfg)
                t_long, b_long = trainer_cpu_seconds(long_cfg), bare_cpu_seconds(long_cfg)
                trainer.append((t_long - t_short) / (long - short))
                bare.append((b_long - b_short) / (long - short))
            t, b = statistics.median(trainer), statistics.median(bare)
            rows.append({"case": name, "iterations": [short, long], "rounds": args.rounds,
                         "trainer_ms_per_iteration": round(t * 1e3, 3), "bare_ms_per_iteration": round(b * 1e3, 3),
                         "overhead_percent": round((t / b - 1) * 100, 1),
                         "trainer_runs_ms": [round(x * 1e3, 3) for x in trainer],
                         "bare_runs_ms": [round(x * 1e3, 3) for x in bare]})
            print(rows[-1], flush=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
                       "1 intra-op thread, CPU", "python": platform.python_version(), "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train-overhead.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = [f"# Trainer overhead vs a bare loop ({meta['date']})", "",
             f"Machine: {meta['machine']} (shared with other jobs). CPU ms per iteration = (CPU time of a long run "
             f"- of a short run) / extra iterations; median of {args.rounds} interleaved rounds. "
             "Produced by `benchmarks/train_overhead.py`.", "",
             "| case | trainer CPU ms/it | bare CPU ms/it | overhead |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['trainer_ms_per_iteration']} | {r['bare_ms_per_iteration']} | "
              f"{r['overhead_percent']:+.1f}% |" for r in rows]
    (RESULTS / "train-overhead.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""The training loop, readable top to bottom: `train(cfg)`.

One iteration (../shared/docs/tgan-method.md §2, the reference bojone/T-GANs):
  1. optim.critic_steps critic steps: fresh real batch, fresh z, fakes from G without gradients;
     E and D minimise the objective's critic loss (reals and fakes encoded in separate calls).
  2. optim.generator_steps generator steps: fresh real batch, fresh z; E and D are frozen
     (requires_grad False, never stepped) but stay in train mode, so E's BatchNorm uses batch statistics.
  3. the generator EMA is updated.
Every image the critic scores, real or fake, first passes through the augmenter (augment.policy; a no-op
unless diffaug or ada is on). Every run.eval_every iterations the EMA generator is scored (evaluation.py)
and the best-scoring state is kept as best.pt.
Every optimiser step is guarded: a NaN/Inf loss or gradient norm stops it before the weights change
(the divergence guard; run.on_divergence). Logging, sample grids and checkpoints happen between iterations.
Layout: `setup` builds a `Run` (data, models, optimisers, the two steps of train/steps.py, resumed state);
`_train` is the loop; `iteration` is one iteration; the pieces they call follow.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import random
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn

from tgan_deploy.checkpoint import load_state_dict_checked
from tgan_deploy.checkpoint_metadata import WEIGHT_KEYS, sampling_weights
from tgan_deploy.config import STYLE_ARCHS, TrainConfig
from tgan_deploy.errors import TganError
from tgan_deploy.io import link_atomic
from tgan_deploy.models import build_critic, build_generator
from tgan_deploy.objectives import get_objective
from tgan_deploy.train import conditional, distributed, evaluation, finetune, plots, rundir, state, style
from tgan_deploy.train.augment import Augmenter, resolve_policy
from tgan_deploy.train.ema import EMA
from tgan_deploy.train.logging import RunLogger, read_metrics, truncate_metrics
from tgan_deploy.train.regularisers import PathLengthGeneratorStep, R1CriticStep
from tgan_deploy.train.runlock import run_lock
from tgan_deploy.train.scores import GlobalScores
from tgan_deploy.train.settings import Provenance, write_config
from tgan_deploy.train.steps import CriticStep, Diverged, GeneratorStep, Latents, StepResult

G_LOSS_EMA_DECAY = 0.99  # smoothing of the logged generator loss g_loss_ema
TOY_SAMPLE_POINTS = 1000  # points in a 2-D scatter plot (latent seeds 0..999)


class DivergenceError(TganError):
    """Training diverged (NaN/Inf) and run.on_divergence could not (or was told not to) recover."""

    exit_code = 3


def train(cfg: TrainConfig, *, resume: bool = False, force: bool = False,
          provenance: Provenance | None = None) -> Path:
    """Train per `cfg` into cfg.run.out; returns the run directory. Raises TganError on bad input.

    `provenance` (tgan-train's: where each setting came from) is recorded in RUN_DIR/config.yaml, and its
    preset line printed once the run directory's lock is held (a refused second trainer prints one line).
    """
    device = resolve_device(cfg.run.device)
    ctx = distributed.setup(device.type)
    try:
        with locked(Path(cfg.run.out), ctx):
            if ctx.is_main and provenance is not None and provenance.preset_line:
                print(provenance.preset_line, file=sys.stderr, flush=True)
            return _train(cfg, ctx, device, resume=resume, force=force, provenance=provenance)
    finally:
        distributed.teardown(ctx)


@contextlib.contextmanager
def locked(run_dir: Path, ctx: distributed.Context) -> Iterator[None]:
    """Rank 0 holds the run directory's lock (runlock.py) before anything is written; every rank learns
    whether it got it, so a refused torchrun run stops on all ranks instead of waiting at a barrier."""
    with contextlib.ExitStack() as stack:
        refusal: TganError | None = None
        if ctx.is_main:
            try:
                stack.enter_context(run_lock(run_dir))
            except TganError as exc:
                refusal = exc
        shared = distributed.broadcast_object(refusal, ctx)
        if isinstance(shared, TganError):
            raise shared
        yield


def _train(cfg: TrainConfig, ctx: distributed.Context, device: torch.device, *, resume: bool, force: bool,
           provenance: Provenance | None) -> Path:
    run = setup(cfg, ctx, device, resume=resume, force=force, provenance=provenance)
    step = run.start
    logger = RunLogger(run.dir, cfg.run.steps, step, enabled=ctx.is_main, tensorboard=cfg.run.tensorboard)
    stop = StopRequest()
    totals = Totals()
    batches = run.batches(step)
    try:
        with stop.installed():
            while step < cfg.run.steps:
                try:
                    iteration(run, batches, totals, step)
                    step += 1
                    # The weights too, before anything is logged or saved (a NaN checkpoint is never written).
                    periodic = due(step, cfg.run.log_every, cfg) or due(step, cfg.run.checkpoint_every, cfg)
                    if periodic and not weights_finite(run.parts.G, run.parts.critic):
                        raise Diverged("non-finite weights")
                except Diverged as exc:
                    set_trainable(run.parts.critic, run.frozen)
                    step = recover(run.parts, run.dir, run.initial, step, str(exc), logger, device)
                    batches = run.batches(step)
                    totals = Totals()
                    continue

                # -- between iterations: log, evaluate, samples, checkpoint, Ctrl-C --------------------------
                logger.advance(step)
                run.parts.trainer.smooth_g_loss(totals.last("g"), G_LOSS_EMA_DECAY)
                if due(step, cfg.run.log_every, cfg):
                    logger.log(step, totals.means() | run.parts.logged())
                    totals = Totals()
                if run.evaluator is not None and eval_due(step, cfg):
                    evaluate_and_keep_best(run.parts, run.evaluator, run.dir, step, logger)
                if ctx.is_main and due(step, cfg.run.sample_every, cfg):
                    write_samples(run.parts, run.dir, step, run.dataset)
                interrupted = distributed.any_rank(stop.requested, ctx, device)
                if due(step, cfg.run.checkpoint_every, cfg) or interrupted:
                    save(run.parts, run.dir, step, ctx)
                if interrupted:
                    logger.event(step, "interrupted", f"stopped by {stop.signal_name}; checkpoint saved, "
                                                      "continue with --resume")
                    raise KeyboardInterrupt
    finally:
        logger.close()
    if ctx.is_main:
        logger.echo(f"done: {step} iterations, run directory {run.dir}")
    return run.dir


def iteration(run: Run, batches: Iterator[Any], totals: Totals, step: int) -> None:
    """One iteration: optim.critic_steps critic steps, optim.generator_steps generator steps (E and D frozen),
    then the generator EMA; each step on a fresh real batch."""
    for _ in range(run.cfg.optim.critic_steps):
        totals.add("d", run.critic_step(*run.next_real(batches)))
    run.parts.critic.requires_grad_(False)
    for _ in range(run.cfg.optim.generator_steps):
        totals.add("g", run.generator_step(*run.next_real(batches)))
    set_trainable(run.parts.critic, run.frozen)
    if run.parts.ema is not None:
        run.parts.ema.update(run.parts.G, step)


@dataclasses.dataclass
class Run:
    """What `setup` builds and the loop uses."""

    cfg: TrainConfig
    dir: Path
    device: torch.device
    dataset: Any
    stream: Any  # data.Stream: this rank's shard of the epochs, resumable at any batch
    parts: Parts  # everything a checkpoint holds
    critic_step: CriticStep
    generator_step: GeneratorStep
    frozen: list[nn.Parameter]  # FreezeD's critic blocks, never trained
    evaluator: evaluation.Evaluator | None  # rank 0's, when the run is evaluated
    start: int  # the iteration to start from (a resumed checkpoint's step, else 0)
    initial: dict[str, Any] | None  # the rollback target before the first checkpoint (None on resume)

    def batches(self, step: int) -> Iterator[Any]:
        """The data stream from the start of iteration `step` (every iteration takes a fixed number of batches)."""
        return self.stream.batches(step * (self.cfg.optim.critic_steps + self.cfg.optim.generator_steps))

    def next_real(self, batches: Iterator[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A real batch and its labels (None unless conditional: the fakes are then drawn on these labels)."""
        batch = next(batches)
        if not self.cfg.data.conditional:
            return batch.to(self.device, non_blocking=True), None
        return batch[0].to(self.device, non_blocking=True), batch[1].to(self.device, non_blocking=True)


def setup(cfg: TrainConfig, ctx: distributed.Context, device: torch.device, *, resume: bool, force: bool,
          provenance: Provenance | None) -> Run:
    """Data, evaluator, models, optimisers and the run directory; resumes or remembers the initial state.
    Everything that can refuse the run comes before the run directory is touched."""
    from tgan_deploy.data import load_dataset, make_loader

    run_dir = Path(cfg.run.out)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    set_determinism(cfg)
    torch.manual_seed(cfg.run.seed)  # the same initial weights on every rank
    np.random.seed(cfg.run.seed)
    random.seed(cfg.run.seed)

    # -- data (labels decide the model's classes) ---------------------------------------------------
    def say(line: str) -> None:
        if ctx.is_main:
            print(line, file=sys.stderr, flush=True)

    dataset = load_dataset(cfg.data.source, cfg.model, cfg.data)
    conditional.configure(cfg, dataset, provenance, say=say)
    policy, announcement = resolve_policy(cfg.augment, dataset.kind, len(dataset))
    if announcement:
        say(announcement)
    # Everything that can refuse the run (an unusable --eval-features, --init-from or --freeze-d) comes before
    # rundir.prepare below: nothing is written for a refused run.
    evaluator = distributed.on_main(lambda: evaluation.plan(cfg, dataset, say), ctx)
    parent = finetune.load_parent(cfg) if cfg.run.init_from else None
    if parent is not None:
        cfg.run.init_from_sha256 = parent["sha256"]
        if provenance is not None:
            provenance.sources["run.init_from_sha256"] = f"sha256 of {parent['path']} (run.init_from)"
    if cfg.model.arch in STYLE_ARCHS:
        style_before = cfg.model.style
        style.configure(cfg, parent)
        if provenance is not None and cfg.model.style is not style_before:
            provenance.sources["model.style"] = (f"the architecture of {parent['path']} (run.init_from)" if parent
                                                 else "tgan-train, from model.channel_base, channel_max, w_dim, ...")
    if cfg.optim.batch_size % ctx.world_size:
        raise TganError(f"optim.batch_size {cfg.optim.batch_size} is the global batch and must divide evenly "
                        f"over {ctx.world_size} processes: pick a multiple of {ctx.world_size}")
    style.check_batch(cfg, cfg.optim.batch_size // ctx.world_size)
    stream = make_loader(dataset.labelled() if cfg.data.conditional else dataset,
                         cfg.optim.batch_size // ctx.world_size, seed=cfg.run.seed, shuffle=True,
                         workers=cfg.data.workers, pin_memory=device.type == "cuda", distributed=ctx.enabled,
                         rank=ctx.rank, world_size=ctx.world_size, drop_last=True)

    # -- models, EMA, optimisers, random generators ---------------------------------------------
    objective = get_objective(cfg.objective.name)
    G = build_generator(cfg.model).to(device)
    critic = build_critic(cfg.model, single_sample=not objective.pairwise).to(device)
    ema = EMA(G, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    frozen = finetune.freeze_blocks(critic, cfg.optim.freeze_d)  # FreezeD; stays frozen (see set_trainable)
    if ctx.enabled and cfg.run.sync_batchnorm:
        distributed.use_global_batchnorm(G)
        distributed.use_global_batchnorm(critic)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr_g, betas=(cfg.optim.beta1, cfg.optim.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.optim.lr_d, betas=(cfg.optim.beta1, cfg.optim.beta2))
    noise_rng = torch.Generator(device).manual_seed(cfg.run.seed + 1)  # z and WGAN-GP's interpolation
    pair_rng = torch.Generator().manual_seed(cfg.run.seed + 2)  # perm:K permutations (make_pairs draws on CPU)
    # The generator as the training steps run it: a style generator tracks w_avg and mixes styles (train/style.py).
    style_training = style.StyleTraining(G, cfg.model.style_mixing, cfg.optim.batch_size, noise_rng, ctx) \
        if cfg.model.arch in STYLE_ARCHS else None
    generate: nn.Module = style_training or G
    scorer = GlobalScores(critic, objective, cfg.objective, ctx, pair_rng, noise_rng)
    augment = Augmenter(cfg.augment, policy, cfg.optim.batch_size, noise_rng)
    parts = Parts(cfg, G, critic, ema, opt_g, opt_d, noise_rng, pair_rng, augment, run_dir, ctx.is_main)

    # -- the run directory (nothing was written before this), then resume or remember the initial state
    # (the rollback target before the first checkpoint) --
    if ctx.is_main:
        rundir.prepare(run_dir, resume=resume, force=force)
    distributed.barrier(ctx)
    start, initial = 0, None
    checkpoint = state.newest_checkpoint(run_dir, device) if resume else None
    if checkpoint is not None:
        start = parts.load(checkpoint)
    else:
        if parent is not None:
            say(finetune.init_weights(parent, G, critic, ema.model if ema is not None else None))
        initial = copy.deepcopy(parts.state_dict(0))
    if ctx.is_main:
        write_config(run_dir / rundir.CONFIG_FILE, cfg, provenance)
        truncate_metrics(run_dir, start)

    # -- the two steps: DDP wraps what is differentiated under torchrun --------------------------
    G_train: nn.Module = generate
    critic_train: nn.Module = scorer
    if ctx.enabled:
        ddp_kwargs: dict[str, Any] = {"device_ids": [device.index]} if device.type == "cuda" else {}
        G_train = nn.parallel.DistributedDataParallel(generate, **ddp_kwargs)
        critic_train = nn.parallel.DistributedDataParallel(scorer, **ddp_kwargs)
    autocast = autocast_for(device, cfg.optim.amp)
    latents = Latents(cfg, ctx, device, noise_rng)
    critic_step = CriticStep(G=generate, model=critic, scores=critic_train, objective=objective, augment=augment,
                             optimizer=opt_d, latents=latents, autocast=autocast, gp_weight=cfg.objective.gp_weight)
    generator_step = GeneratorStep(G=G_train, model=G, scores=scorer, objective=objective, augment=augment,
                                   optimizer=opt_g, latents=latents, autocast=autocast)
    # lazy regularisers: the same steps with one more term (train/regularisers.py)
    if cfg.objective.r1_gamma > 0:
        critic_step = R1CriticStep(**vars(critic_step), r1_gamma=cfg.objective.r1_gamma,
                                   r1_interval=cfg.objective.r1_interval)
    if style_training is not None and cfg.objective.pl_weight > 0:
        generator_step = PathLengthGeneratorStep(**vars(generator_step), settings=cfg.objective, style=style_training,
                                                 trainer=lambda: parts.trainer)
    return Run(cfg, run_dir, device, dataset, stream, parts, critic_step, generator_step, frozen, evaluator,
               start, initial)


# -- the pieces the loop calls -------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TganError("--device cuda was asked for but torch sees no CUDA GPU: use --device cpu or auto")
    return torch.device(name)


def autocast_for(device: torch.device, amp: str) -> torch.autocast:
    """optim.amp "bf16": forward passes under bfloat16 autocast on the CPU (AVX512-BF16 / AMX) and on GPUs
    alike (convolutions and matrix products in bf16; losses are computed in float32); "none": off."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def set_determinism(cfg: TrainConfig) -> None:
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' requirement for determinism
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def due(step: int, every: int, cfg: TrainConfig) -> bool:
    """Periodic work happens every `every` iterations and after the last one."""
    return step % every == 0 or step == cfg.run.steps


def eval_due(step: int, cfg: TrainConfig) -> bool:
    """Evaluations every run.eval_every iterations and after the last one, if the run evaluates at all."""
    return evaluation.evaluates(cfg) and due(step, cfg.run.eval_every, cfg)


def set_trainable(critic: nn.Module, frozen: list[nn.Parameter]) -> None:
    """The critic trains again after the generator steps, except its FreezeD blocks."""
    critic.requires_grad_(True)
    for p in frozen:
        p.requires_grad_(False)


def weights_finite(*models: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for m in models for p in m.parameters())


class Totals:
    """Sums of per-step losses and gradient norms over one log interval (Python floats: deterministic)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, float] = {}

    def add(self, who: str, result: StepResult) -> None:
        for key, value in ((f"{who}_loss", result.loss), (f"{who}_grad_norm", result.grad_norm)):
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1
        self.latest[who] = result.loss

    def last(self, who: str) -> float:
        return self.latest[who]

    def means(self) -> dict[str, float]:
        return {key: total / self.counts[key] for key, total in self.sums.items()}


class Parts:
    """Everything a checkpoint captures, and the two directions (state_dict / load)."""

    def __init__(self, cfg: TrainConfig, G: nn.Module, critic: nn.Module, ema: EMA | None,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, noise_rng: torch.Generator,
                 pair_rng: torch.Generator, augment: Augmenter, run_dir: Path, is_main: bool) -> None:
        self.cfg, self.G, self.critic, self.ema = cfg, G, critic, ema
        self.opt_g, self.opt_d, self.noise_rng, self.pair_rng = opt_g, opt_d, noise_rng, pair_rng
        self.augment = augment
        self.run_dir, self.is_main = run_dir, is_main  # rank 0 evaluates, so it alone keeps best.pt's score
        self.trainer = state.TrainerState()
        self.evaluation: dict[str, Any] | None = None  # the newest evaluation

    def state_dict(self, step: int) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "step": step,
            "classes": list(self.cfg.model.classes),
            "generator": self.G.state_dict(),
            "generator_ema": self.ema.model.state_dict() if self.ema is not None else None,
            "critic": self.critic.state_dict(),
            "optim_g": self.opt_g.state_dict(),
            "optim_d": self.opt_d.state_dict(),
            "rng": state.capture_rng(self.noise_rng, self.pair_rng),
            "trainer": self.trainer.to_dict() | {"augment": self.augment.state()},
            "evaluation": self.evaluation,
        }

    def load(self, ckpt: dict[str, Any]) -> int:
        """Restore from a checkpoint dict (a step file on --resume, the rollback target, or the initial state);
        returns its step. Architecture mismatches fail in one line. The one way state is restored, so the
        best score always agrees with best.pt (TrainerState.reconcile)."""
        where = ckpt.get("path", "the initial state")
        load_state_dict_checked(self.G, ckpt["generator"], "generator", where)
        load_state_dict_checked(self.critic, ckpt["critic"], "critic", where)
        if self.ema is not None:
            weights = WEIGHT_KEYS[sampling_weights(ckpt)]  # a run that had EMA off: start the copy from G
            load_state_dict_checked(self.ema.model, ckpt[weights], "generator_ema", where)
        try:
            self.opt_g.load_state_dict(ckpt["optim_g"])
            self.opt_d.load_state_dict(ckpt["optim_d"])
            state.restore_rng(ckpt["rng"], self.noise_rng, self.pair_rng)
            trainer = dict(ckpt["trainer"])
            self.augment.load_state(trainer.pop("augment", None))
            self.trainer = state.TrainerState.from_dict(trainer)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise TganError(f"{where} lacks trainer state or does not match this run ({str(exc)[:120]}): "
                            "resume only from checkpoints tgan-train wrote for the same config") from exc
        self.trainer.reconcile(state.best_evaluation(self.run_dir) if self.is_main else None)
        self.evaluation = ckpt.get("evaluation")
        self.set_lr()
        return int(ckpt["step"])

    def logged(self) -> dict[str, float]:
        """The trainer's numbers in each log record, beside the steps' means."""
        numbers = {"g_loss_ema": self.trainer.g_loss_ema, "lr_g": self.opt_g.param_groups[0]["lr"],
                   "lr_d": self.opt_d.param_groups[0]["lr"]}
        return numbers | ({"augment_p": self.augment.p} if self.augment.active else {})

    def set_lr(self) -> None:
        scale = self.trainer.lr_scale
        for opt, lr in ((self.opt_g, self.cfg.optim.lr_g), (self.opt_d, self.cfg.optim.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale


def save(parts: Parts, run_dir: Path, step: int, ctx: distributed.Context) -> None:
    """Rank 0 writes step-XXXXXXXX.pt and prunes old ones (the loop checked the weights are finite)."""
    if ctx.is_main:
        state.write_checkpoint(run_dir, step, parts.state_dict(step), parts.cfg.run.keep_last)
    distributed.barrier(ctx)


def recover(parts: Parts, run_dir: Path, initial: dict[str, Any] | None, step: int, reason: str,
            logger: RunLogger, device: torch.device) -> int:
    """The divergence guard: stop, or roll back to the last good checkpoint with lower learning rates."""
    cfg = parts.cfg.run
    rollbacks = parts.trainer.rollbacks
    logger.event(step, "diverged", reason)
    if cfg.on_divergence == "stop":
        raise DivergenceError(f"training diverged at iteration {step} ({reason}); run.on_divergence is 'stop': "
                              "lower optim.lr_g / optim.lr_d, or set run.on_divergence rollback")
    if rollbacks >= cfg.max_rollbacks:
        raise DivergenceError(f"training diverged at iteration {step} ({reason}) after {rollbacks} rollbacks "
                              f"(run.max_rollbacks): lower optim.lr_g / optim.lr_d and --resume or start again")
    lr_scale = parts.trainer.lr_scale * cfg.rollback_lr_factor
    good = state.newest_checkpoint(run_dir, device)
    target = good if good is not None else initial
    if target is None:
        raise DivergenceError(f"training diverged at iteration {step} ({reason}) and there is no checkpoint "
                              "to roll back to: lower optim.lr_g / optim.lr_d")
    restored = parts.load(target)
    parts.trainer.lr_scale, parts.trainer.rollbacks = lr_scale, rollbacks + 1
    parts.set_lr()
    logger.event(restored, "rollback", f"back to iteration {restored}, learning rates x{lr_scale:g} "
                                       f"(rollback {rollbacks + 1} of at most {cfg.max_rollbacks})")
    return restored


@torch.no_grad()
def evaluate_and_keep_best(parts: Parts, evaluator: evaluation.Evaluator, run_dir: Path, step: int,
                           logger: RunLogger) -> None:
    """Score the sampling generator (EMA if kept); log it; save best.pt when it beats every earlier score."""
    model = parts.ema.model if parts.ema is not None else parts.G
    parts.evaluation = evaluator(model, step)
    logger.record(step, {f"eval/{name}": value for name, value in parts.evaluation["metrics"].items()},
                  headline=f"eval/{parts.evaluation['metric']}")
    if evaluation.improves(parts.evaluation, parts.trainer.best_score) and weights_finite(parts.G, parts.critic):
        parts.trainer.best_score, parts.trainer.best_step = parts.evaluation["value"], step
        state.write_best(run_dir, parts.state_dict(step))
        logger.echo(f"step {step:>8d} | best so far ({parts.evaluation['metric']} "
                    f"{parts.evaluation['value']:.4g}): saved checkpoints/{state.BEST_FILE}")
    plots.save_eval_plot(read_metrics(run_dir), run_dir / rundir.EVAL_PLOT)


@torch.no_grad()
def write_samples(parts: Parts, run_dir: Path, step: int, dataset: Any) -> None:
    """Samples from the fixed latent seeds (runtime.latents: the same every time) and the loss plot."""
    from tgan_deploy.runtime.latents import latents

    model = parts.ema.model if parts.ema is not None else parts.G
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    cfg = parts.cfg
    if cfg.model.arch == "mlp":
        z = torch.from_numpy(latents(range(TOY_SAMPLE_POINTS), cfg.model.latent_dim)).to(device)
        path = run_dir / rundir.SAMPLES_DIR / f"step-{step:08d}.png"
        labels = conditional.cycled_labels(TOY_SAMPLE_POINTS, cfg.model.num_classes, device=device)
        plots.save_scatter(model(z, labels), toy_reference(cfg.data.source, dataset), path,
                           f"{cfg.objective.name}, iteration {step}")
    else:
        n = cfg.run.sample_grid
        z = torch.from_numpy(latents(range(n * n), cfg.model.latent_dim)).to(device)
        path = run_dir / rundir.SAMPLES_DIR / f"step-{step:08d}.png"
        labels = conditional.cycled_labels(n * n, cfg.model.num_classes, per_label=n, device=device)  # row = class
        plots.save_image_grid(model(z, labels), path, nrow=n)
    model.train(was_training)
    link_atomic(path, run_dir / rundir.LATEST_SAMPLES)
    records = read_metrics(run_dir)
    plots.save_loss_plot(records, run_dir / rundir.LOSS_PLOT)
    plots.save_eval_plot(records, run_dir / rundir.EVAL_PLOT)


def toy_reference(source: str, dataset: Any) -> np.ndarray:
    """The real mixture's centres for builtin 2-D data; otherwise a sample of the real points."""
    from tgan_deploy.data.toy import MIXTURES

    name = source.removeprefix("builtin:")
    if source.startswith("builtin:") and name in MIXTURES:
        return MIXTURES[name].centres
    return np.stack([dataset[i].numpy() for i in range(min(len(dataset), 500))])


class StopRequest:
    """Ctrl-C / SIGTERM: finish the current iteration, save a checkpoint, exit 130. A second Ctrl-C aborts
    at once (every file write is atomic, so nothing is left half-written)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

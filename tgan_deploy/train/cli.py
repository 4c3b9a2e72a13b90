"""`tgan-train` / `python -m tgan_deploy train` / `torchrun ... -m tgan_deploy.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tgan_deploy.cli import TganCommand
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import ConfigError
from tgan_deploy.train.settings import Provenance, resolve

# option name -> config key it overrides
OVERRIDES = {
    "data": "data.source",
    "arch": "model.arch",
    "objective": "objective.name",
    "pairing": "objective.pairing",
    "resolution": "model.resolution",
    "batch_size": "optim.batch_size",
    "steps": "run.steps",
    "out": "run.out",
    "device": "run.device",
    "seed": "run.seed",
    "conditional": "data.conditional",
    "augment": "augment.policy",
    "eval_every": "run.eval_every",
    "eval_features": "run.eval_features",
    "init_from": "run.init_from",
    "freeze_d": "optim.freeze_d",
}


def resolve_config(config: str | None, out: str | None, resume: bool,
                   overrides: dict[str, Any]) -> tuple[TrainConfig, Provenance]:
    """Defaults <- the data's preset <- config file (or, on --resume without --config, RUN_DIR/config.yaml)
    <- options <- --set; with where each value came from."""
    from tgan_deploy.run_layout import CONFIG_FILE

    if config is None and resume and out is not None and (Path(out) / CONFIG_FILE).exists():
        config = str(Path(out) / CONFIG_FILE)
    return resolve(config, overrides)


def parse_set(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r} must look like section.key=value, e.g. --set optim.lr_g=1e-4")
        pairs[key.strip()] = value.strip()
    return pairs


@click.command(cls=TganCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON config file (sections model, objective, optim, data, run). A run directory's "
                   "config.yaml reruns that run. Without it: the reference defaults, under the data's preset "
                   "(docs/training.md, Presets).")
@click.option("--data", default=None, help="Training data: an image folder, an .npz file, or "
                                           "builtin:mnist5k / builtin:digits / builtin:ring8 / builtin:grid25. "
                                           "It chooses a preset (e.g. 2-D points: the toy MLP setup), printed "
                                           "at start; --config and --set override it.")
@click.option("--arch", type=click.Choice(["dcgan", "mlp", "stylegan2"]), default=None,
              help="Networks: dcgan (the T-GAN reference's, the default for images), mlp (2-D points, chosen by their "
                   "preset) or stylegan2 (StyleGAN2's generator and discriminator trunk under the pair head, with its "
                   "own preset per resolution; docs/training.md, StyleGAN2).")
@click.option("--objective", default=None,
              help="Loss: t-sgan, t-wgan, t-lsgan, t-hinge (T-GANs) or sgan, rsgan, rasgan, ralsgan, hinge, wgan-gp.")
@click.option("--pairing", default=None, help="T-objectives: index (real i with fake i, the reference), "
                                              "perm:K (index + K fake permutations) or all (every real x fake).")
@click.option("--resolution", type=int, default=None, help="Image size: 32, 64, 128 or 256.")
@click.option("--batch-size", type=int, default=None,
              help="GLOBAL batch size (under torchrun it is split evenly over the processes).")
@click.option("--steps", type=int, default=None, help="Iterations to train to (one = critic steps + generator steps).")
@click.option("--out", default=None, help="Run directory for config, checkpoints, samples, metrics and plots.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="auto: CUDA when torch sees a GPU, else CPU.")
@click.option("--seed", type=int, default=None, help="Seed for initial weights, data order, latents and pairs.")
@click.option("--conditional", is_flag=True, default=None,
              help="Train class-conditionally on the data's labels (class sub-folders, an .npz 'labels' array, "
                   "the builtins' digits / mixture components); the classes go into the checkpoint and exports.")
@click.option("--augment", type=click.Choice(["auto", "none", "diffaug", "ada"]), default=None,
              help="Augment what the critic sees, reals and fakes alike: diffaug (DiffAugment: colour, translation, "
                   "cutout), ada (the same with an adaptive probability p), auto (ada for image data of fewer "
                   "than 2,000 images, announced at start), none [default: none; docs/training.md, Small data].")
@click.option("--eval-every", type=int, default=None, metavar="STEPS",
              help="Score the EMA generator (FD, KID: tgan-eval's metrics) every STEPS iterations into metrics.jsonl, "
                   "eval.png and TensorBoard, and keep the best as checkpoints/best.pt [default: 1000; 0: never].")
@click.option("--eval-features", default=None, metavar="PATH",
              help="TorchScript feature detector for image data (Inception's inception-2015-12-05.pt); default: "
                   "the one in ~/.cache/tgan-deploy/features/ if it is there (docs/evaluation.md). Digits and 2-D "
                   "data need none.")
@click.option("--init-from", default=None, metavar="CHECKPOINT|RUN|FILE.pkl|FILE.pt",
              help="Fine-tune: start from a trained model's weights (a run directory's best.pt, else its newest "
                   "checkpoint, or an NVlabs .pkl / rosinality .pt StyleGAN2 with --arch stylegan2), wherever names "
                   "and shapes match; fresh optimiser state.")
@click.option("--freeze-d", type=int, default=None, metavar="N",
              help="FreezeD: keep the critic's first N encoder blocks fixed (with --init-from) [default: 0].")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its newest checkpoint (reads its config.yaml unless --config "
                   "is given; options still override, e.g. a larger --steps). Starts fresh if it has none.")
@click.option("--force", is_flag=True, help="Replace a run already in --out (deletes its checkpoints, samples, "
                                            "metrics and plots; nothing else).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set any config key, e.g. --set optim.lr_g=1e-4 --set run.checkpoint_every=200 (repeatable; "
                   "applied last).")
def main(config: str | None, data: str | None, arch: str | None, objective: str | None, pairing: str | None,
         resolution: int | None, batch_size: int | None, steps: int | None, out: str | None, device: str | None,
         seed: int | None, conditional: bool | None, augment: str | None, eval_every: int | None,
         eval_features: str | None, init_from: str | None, freeze_d: int | None, resume: bool, force: bool,
         sets: tuple[str, ...]) -> None:
    """Train a T-GAN (or a baseline GAN) and write a run directory.

    \b
    Examples:
      tgan-train --data builtin:ring8 --steps 3000 --out runs/ring   # the 2-D preset, nothing else needed
      tgan-train --data builtin:mnist5k --out runs/mnist                 # preset: 1 channel, 32 px
      tgan-train --data builtin:mnist5k --conditional --out runs/cmnist  # G(z, digit)
      tgan-train --data builtin:mnist5k --set data.limit=500 --augment auto --out runs/small
      tgan-train --data my_images/ --init-from runs/mnist --freeze-d 2 --out runs/tuned
      tgan-train --data builtin:mnist5k --arch stylegan2 --conditional --steps 1000 --out runs/sg2
      tgan-train --data faces/ --arch stylegan2 --resolution 64 --init-from ffhq.pkl --augment ada --out runs/ft
      tgan-train --out runs/mnist --resume
      torchrun --nproc_per_node 2 -m tgan_deploy.train --config cfg.yaml --out runs/ddp

    Ctrl-C finishes the current iteration, saves a checkpoint and exits 130; --resume continues.
    See docs/training.md for the run directory, resume, multi-GPU and the divergence guard.
    """
    from tgan_deploy.train.loop import train

    values = dict(data=data, arch=arch, objective=objective, pairing=pairing, resolution=resolution,
                  batch_size=batch_size, steps=steps, out=out, device=device, seed=seed,
                  conditional=conditional or None, augment=augment, eval_every=eval_every,
                  eval_features=eval_features, init_from=init_from, freeze_d=freeze_d)
    overrides: dict[str, Any] = {OVERRIDES[k]: v for k, v in values.items() if v is not None}
    overrides.update(parse_set(sets))
    cfg, provenance = resolve_config(config, out, resume, overrides)
    train(cfg, resume=resume, force=force, provenance=provenance)

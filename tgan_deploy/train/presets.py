"""Per-data presets: what a data source needs, so `tgan-train --data builtin:ring8` trains with nothing else.

A preset sits between the defaults (the reference's image hyper-parameters, config.py) and everything the
user gives: `--config` file, named options and `--set` always win (settings.py resolves the order). The
values and the evidence for each are in docs/training.md ("Presets"):

- 2-D points (builtin:ring8, builtin:grid25, an .npz of [N, 2] points): the toy setup the experiments found
  to learn (docs/results.md, experiments/toy_mixtures.py): PacGAN's MLP at width 128, z 2-d, Adam 1e-4 /
  beta1 0.8, batch 100, the raw generator (no EMA), and no spectral norm on the critic: with it the 2-D
  SGAN-family critics stay at chance (loss 2 ln 2). t-wgan keeps spectral norm, its Lipschitz constraint.
- builtin:mnist5k (28 px) and builtin:digits (8 px): one channel at 32 px, the smallest size the DCGAN makes.
- image folders and .npz images: the channels of the images (grayscale data trains a 1-channel model).
- --arch stylegan2 (a second preset, over the data's): StyleGAN2-ADA's settings per resolution, narrow at 32 px.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

TOY_MODEL = {"model.arch": "mlp", "model.latent_dim": 2, "model.toy_hidden": 128}
TOY_OPTIM = {"optim.lr_g": 1e-4, "optim.lr_d": 1e-4, "optim.beta1": 0.8, "optim.batch_size": 100,
             "optim.ema_decay": 0.0}
SMALL_DIGITS = {"model.channels": 1, "model.resolution": 32}


# --arch stylegan2, per resolution (docs/training.md, Presets): StyleGAN2-ADA's "auto" config (widths
# min(16384 / r, 512), w 512, 2 mapping layers, Adam 0.0025 with betas (0, 0.99), one critic step per generator
# step, batch min(4096 / r, 32), G EMA half-life 10k images, R1 gamma 0.0002 r^2 / batch every 16 critic steps),
# except at 32 px and below, the preset that trains on a 2-core CPU: widths min(1024 / r, 64), z and w 64, and
# STYLEGAN2_CPU_SHORT.
STYLEGAN2_NARROW = {"model.channel_base": 1024, "model.channel_max": 64, "model.latent_dim": 64, "model.w_dim": 64}
# At ADA's G lr 0.0025 and R1 gamma 0.0064 these narrow networks collapse within 1,000 iterations (a few digits
# whatever the label, the critic separating nearly every pair, conditional accuracy at chance), with any one of a
# dozen single changes too; a 4x G learning rate with R1 gamma 10 keeps the critic nearer chance and learns the
# classes (experiments/stylegan2_sweep.py, docs/results.md "StyleGAN2").
STYLEGAN2_CPU_SHORT = {"optim.lr_g": 0.01, "objective.r1_gamma": 10.0}
STYLEGAN2_WIDE = {"model.channel_base": 16384, "model.channel_max": 512, "model.latent_dim": 512, "model.w_dim": 512}
STYLEGAN2_OPTIM = {"optim.lr_g": 0.0025, "optim.lr_d": 0.0025, "optim.beta1": 0.0, "optim.beta2": 0.99,
                   "optim.critic_steps": 1, "optim.generator_steps": 1,
                   "optim.ema_decay": 0.5 ** (32 / 10_000)}  # ADA: ema_kimg = batch * 10 / 32 -> 32 / 10k per image
R1_GAMMA_PER_PIXEL = 0.0002  # StyleGAN2-ADA's auto config: gamma = 0.0002 res^2 / batch
R1_INTERVAL = 16  # StyleGAN2's lazy regularisation interval for the critic


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str  # what it is for, e.g. "builtin:ring8" or "grayscale image folder"
    values: dict[str, Any]  # dotted config keys -> value


def toy_spectral_norm(objective: str) -> str:
    """2-D critics: no spectral norm (it holds SGAN-family critics at chance, docs/results.md), except t-wgan's
    Lipschitz constraint."""
    return "torch" if objective == "t-wgan" else "none"


def toy_preset(name: str, objective: str) -> Preset:
    return Preset(name, TOY_MODEL | {"model.spectral_norm": toy_spectral_norm(objective)} | TOY_OPTIM)


def stylegan2_batch(resolution: int) -> int:
    """StyleGAN2-ADA's auto batch on one GPU: min(4096 / res, 32)."""
    return max(1, min(4096 // resolution, 32))


def stylegan2_preset(resolution: int, batch_size: int | None, fine_tuning: bool = False) -> Preset:
    """The --arch stylegan2 preset at `resolution`; R1's gamma follows the batch the run will use (the user's
    `batch_size` if given, else the preset's). `fine_tuning` (--init-from): StyleGAN2-ADA's optimiser and R1 at
    every resolution, since STYLEGAN2_CPU_SHORT is for learning from scratch and the parent decides the widths."""
    batch = batch_size or stylegan2_batch(resolution)
    narrow = resolution <= 32
    values = (STYLEGAN2_NARROW if narrow else STYLEGAN2_WIDE) | STYLEGAN2_OPTIM | {
        "optim.batch_size": stylegan2_batch(resolution),
        "objective.r1_gamma": R1_GAMMA_PER_PIXEL * resolution**2 / batch,
        "objective.r1_interval": R1_INTERVAL}
    if narrow and not fine_tuning:
        values |= STYLEGAN2_CPU_SHORT
    return Preset(f"stylegan2 {resolution} px{' fine-tuning' if narrow and fine_tuning else ''}", values)


def preset_for(source: str, objective: str) -> Preset | None:
    """The preset of data `source` (trained with `objective`); None for a path that does not exist
    (loading the data reports that)."""
    from tgan_deploy.data import builtins

    if source.startswith(builtins.PREFIX):
        name = builtins.builtin_name(source)
        if builtins.BUILTINS[name] == "points":
            return toy_preset(source, objective)
        return Preset(source, dict(SMALL_DIGITS))
    path = Path(source).expanduser()
    if path.is_dir():
        from tgan_deploy.data.folder import folder_channels

        channels = folder_channels(path)
        return Preset(f"{'grayscale' if channels == 1 else 'colour'} image folder", {"model.channels": channels})
    if path.is_file() and path.suffix.lower() == ".npz":
        from tgan_deploy.data.npz import array_shape, image_channels

        shape = array_shape(path)
        if len(shape) == 2 and shape[1] == 2:
            return toy_preset(".npz points", objective)
        found = image_channels(shape)
        if found is None:
            return None  # loading names the accepted shapes
        channels = 1 if found == 1 else 3  # RGBA trains RGB (alpha is composited over white)
        return Preset(f".npz {'grayscale' if channels == 1 else 'colour'} images", {"model.channels": channels})
    return None


# -- the line printed at start ---------------------------------------------------------------------

def _number(value: float) -> str:
    """1e-4 rather than 0.0001 (how learning rates are written)."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}" if abs(int(exponent)) >= 4 else f"{value:g}"


def _spectral_norm(value: str) -> str:
    return "no spectral norm on the critic" if value == "none" else f"spectral norm ({value}) on the critic"


PHRASES: dict[str, Any] = {
    "model.arch": str,
    "model.latent_dim": "latent {}".format,
    "model.toy_hidden": "width {}".format,
    "model.spectral_norm": _spectral_norm,
    "model.channels": lambda c: "1 channel" if c == 1 else f"{c} channels",
    "model.resolution": "{} px".format,
    "optim.lr_g": lambda lr: f"G lr {_number(lr)}",
    "optim.lr_d": lambda lr: f"critic lr {_number(lr)}",
    "optim.beta1": "beta1 {:g}".format,
    "optim.batch_size": "batch {}".format,
    "optim.ema_decay": lambda d: "no generator EMA" if d == 0 else f"EMA {d:.5g}",
    "optim.beta2": "beta2 {:g}".format,
    "optim.critic_steps": "{} critic step(s)".format,
    "optim.generator_steps": "{} generator step(s) per iteration".format,
    "model.channel_base": "channel base {}".format,
    "model.channel_max": "max width {}".format,
    "model.w_dim": "w {}".format,
    "objective.r1_gamma": lambda g: f"R1 gamma {g:.4g}",
    "objective.r1_interval": "every {} critic steps".format,
}


def describe(preset: Preset, overridden: list[str]) -> str:
    """One line: 'builtin:ring8 preset: mlp, latent 2, ... (yours instead: optim.batch_size)'."""
    used = [PHRASES[k](v) for k, v in preset.values.items() if k not in overridden]
    line = f"{preset.name} preset: {', '.join(used) if used else 'nothing'}"
    if overridden:
        line += f" (yours instead: {', '.join(overridden)})"
    return line + " (docs/training.md, Presets)"

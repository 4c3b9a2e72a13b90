"""`tgan-sample MODEL --walk 3,17,42 --frames 30 --out walk.gif`: the walk mode of tgan-sample.

tgan-sample takes `walk_options` and hands over to `sample_walk` when any of them is given; every input
is checked before the model loads, and the file is written atomically once all frames exist.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tgan_deploy.cli import int_list
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.animation import check_animation_target, save_animation
from tgan_deploy.runtime.latents import check_interpolation, check_latent_options, check_seeds
from tgan_deploy.runtime.provenance import label_info, provenance, w_info
from tgan_deploy.runtime.sampler import DEFAULT_INTERPOLATION, Sampler, interpolation_method
from tgan_deploy.runtime.walk import check_image_model, render_walk, segment_steps

DEFAULT_FRAMES, DEFAULT_FPS = 30, 10.0


def walk_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The --walk, --frames, --method and --fps options (None when not given: sample_walk fills defaults)."""
    options = [
        click.option("--walk", default=None,
                     help="Render a latent walk through these comma-separated seeds, in order (e.g. 3,17,42; "
                          "repeat the first seed at the end for a loop) to --out FILE.gif, FILE.mp4 (needs "
                          "the [video] extra) or FILE.png (all frames in one strip).",
                     metavar="SEEDS"),
        click.option("--frames", type=int, default=None,
                     help=f"Frames of the walk, one per seed at least; every seed is itself a frame "
                          f"[default: {DEFAULT_FRAMES}]."),
        click.option("--method", default=None,
                     help=f"Walk interpolation between seeds: slerp or lerp [default: {DEFAULT_INTERPOLATION}; "
                          "style models: lerp in w, their only method]."),
        click.option("--fps", type=float, default=None,
                     help=f"Walk playback speed, frames per second (GIF: at most 50) [default: {DEFAULT_FPS:g}]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def sample_walk(open_sampler: Callable[[], Sampler], out: Path, columns: int | None, truncation: float | None,
                psi: float | None, seeds_option: str | None, label: str | None, walk: str | None,
                frames: int | None, method: str | None, fps: float | None, psi_cutoff: int | None = None) -> None:
    if walk is None:
        raise TganError("--frames, --method and --fps shape a walk: add --walk SEEDS (e.g. --walk 3,17,42)")
    if seeds_option is not None:
        raise TganError("--walk and --seeds both choose seeds: give only --walk for a walk")
    seed_list = check_seeds(int_list(walk, "--walk"))
    frames = DEFAULT_FRAMES if frames is None else frames
    fps = DEFAULT_FPS if fps is None else fps
    segment_steps(len(seed_list), frames)  # everything is checked before the model loads
    if method is not None:
        check_interpolation(2, method)
    check_latent_options(truncation, psi)
    check_animation_target(out, fps)
    with open_sampler() as sampler:
        check_image_model(sampler)
        sampler.check_labels(label, 1)  # a conditional model needs --label, an unconditional one takes none
        method = interpolation_method(sampler, method)  # slerp of z by default; a style model lerps ws
        with click.progressbar(length=frames, label="walking", file=sys.stderr) as bar:  # drawn on a terminal
            images = render_walk(sampler, seed_list, frames, method, truncation=truncation, psi=psi, label=label,
                                 psi_cutoff=psi_cutoff,
                                 progress=bar.update)
        info = provenance(sampler, walk=seed_list, frames=frames, method=method, truncation=truncation, psi=psi,
                          **w_info(psi_cutoff=psi_cutoff),
                          **label_info(sampler, label))
        save_animation(out, images, fps=fps, columns=columns, info=info)
        click.echo(f"wrote a {frames}-frame walk through seeds {','.join(map(str, seed_list))} to {out} "
                   f"({sampler.backend}: {', '.join(sampler.providers)})")

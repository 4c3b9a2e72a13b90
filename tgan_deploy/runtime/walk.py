"""Latent walks: one path through several seeds' latents, rendered as frames for an animation or a strip.

    with Sampler.open("export/") as sampler:
        frames = render_walk(sampler, [3, 17, 42], frames=30)   # uint8 [30, H, W, C]

The path visits every seed, in order: seeds s_0 .. s_{K-1} make K-1 segments, each interpolated with
`interpolate_latents` (slerp by default). The F frames share keyframes: F-1 steps are spread over the
segments as evenly as integers allow, the first (F-1) mod (K-1) segments taking one step more. So frame 0
is exactly s_0's latent, the last frame exactly s_{K-1}'s, and every seed's latent is itself one of the
frames (which is why F must be at least K). Truncation and psi apply to the seeds' latents, as in
`Sampler.sample`, so a frame at a seed is exactly `sample([seed], truncation=, psi=)`. A style model walks
in w instead: the keyframes are the seeds' ws (psi and psi_cutoff applied: truncation in w) joined by straight
lines (`lerp_ws`), the way StyleGAN's videos interpolate.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import numpy as np

from tgan_deploy.errors import TganError
from tgan_deploy.runtime.labels import Labels
from tgan_deploy.runtime.latents import InvalidLatentOptionError, check_seeds, interpolate_latents, latents
from tgan_deploy.runtime.sampler import Sampler, interpolation_method
from tgan_deploy.runtime.wspace import lerp_ws, refuse_w_controls


def segment_steps(seed_count: int, frames: int) -> list[int]:
    """Steps per segment of a walk through `seed_count` seeds in `frames` frames (they sum to frames - 1)."""
    if seed_count < 2:
        raise InvalidLatentOptionError(f"a walk needs at least 2 seeds (e.g. 3,17,42), got {seed_count}")
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 2:
        raise InvalidLatentOptionError(f"frames must be an integer >= 2 (first and last seed included), got "
                                       f"{frames!r}")
    segments = seed_count - 1
    if frames - 1 < segments:
        raise InvalidLatentOptionError(f"{frames} frames cannot visit {seed_count} seeds: use at least "
                                       f"{seed_count} frames (one per seed)")
    base, extra = divmod(frames - 1, segments)
    return [base + (1 if i < extra else 0) for i in range(segments)]


def walk_latents(seeds: Iterable[int], latent_dim: int, frames: int, method: str = "slerp", *,
                 truncation: float | None = None, psi: float | None = None, rule: str = "tgan") -> np.ndarray:
    """float32 latents [frames, latent_dim] walking through `seeds` in order (see the module doc)."""
    seed_list = check_seeds(seeds, rule)
    keys = latents(seed_list, latent_dim, truncation=truncation, psi=psi, rule=rule)
    return walk_path(keys, frames, lambda a, b, n: interpolate_latents(a, b, n, method))


def walk_path(keys: np.ndarray, frames: int, between: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
              ) -> np.ndarray:
    """`frames` points through keys[0], keys[1], ... in order; between(a, b, n) gives n points from a to b."""
    steps = segment_steps(len(keys), frames)
    path = [keys[:1]]
    for i, n in enumerate(steps):
        path.append(between(keys[i], keys[i + 1], n + 1)[1:])  # drop the shared keyframe
    return np.concatenate(path)


def check_image_model(sampler: Sampler) -> None:
    if sampler.kind != "image":
        raise TganError("a walk needs an image model; this model outputs 2-D points (sample it with --n/--seeds)")


def render_walk(sampler: Sampler, seeds: Iterable[int], frames: int, method: str | None = None, *,
                truncation: float | None = None, psi: float | None = None, label: Labels = None,
                progress: Callable[[int], None] | None = None, psi_cutoff: int | None = None) -> np.ndarray:
    """uint8 frames [frames, H, W, C] of a walk, run in chunks of sampler.max_batch.

    method: None for the model's default (slerp of z; a style model lerps ws, its only method).
    label: the class of every frame, for a class-conditional model.
    progress(n) is called after each chunk with the number of frames it made (e.g. a progress bar's update).
    """
    check_image_model(sampler)
    method = interpolation_method(sampler, method)
    seed_list = check_seeds(seeds, sampler.seed_rule)
    if sampler.w_space:
        keys = sampler.seed_ws(seed_list, truncation=truncation, psi=psi, psi_cutoff=psi_cutoff, labels=label)
        path = walk_path(keys, frames, lerp_ws)
        labels = None
    else:
        refuse_w_controls(psi_cutoff)
        path = walk_latents(seed_list, sampler.latent_dim, frames, method, truncation=truncation, psi=psi,
                            rule=sampler.seed_rule)
        labels = sampler.check_labels(label, len(path))
    chunks = []
    for start in range(0, len(path), sampler.max_batch):
        rows = slice(start, start + sampler.max_batch)
        if sampler.w_space:  # the labels went into the keyframes' mapping
            chunks.append(sampler.sample_ws(path[rows]))
        else:
            chunks.append(sampler.sample_latents(path[rows], None if labels is None else labels[rows]))
        if progress is not None:
            progress(len(chunks[-1]))
    return np.concatenate(chunks)

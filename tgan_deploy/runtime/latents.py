"""Seeds -> latents: the one contract every backend, report, grid, benchmark and test shares.

The latent for seed `s` is `numpy.random.default_rng(s).standard_normal(latent_dim)` computed in
float64 and cast to float32. Any program can reproduce it with numpy alone.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from tgan_deploy.errors import TganError


class InvalidSeedError(TganError, ValueError):
    """A seed is negative, not an integer, or the seed list is empty."""


def latent(seed: int, latent_dim: int) -> np.ndarray:
    """The float32 latent vector of one seed."""
    return np.random.default_rng(seed).standard_normal(latent_dim).astype(np.float32)


def check_seeds(seeds: Iterable[int]) -> list[int]:
    """The seeds as a list; InvalidSeedError if empty or any is not a non-negative integer."""
    seeds = list(seeds)
    if not seeds:
        raise InvalidSeedError("no seeds given: pass at least one non-negative integer seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise InvalidSeedError(f"seed {s!r} is not a non-negative integer: seeds must be ints >= 0")
    return seeds


def latents(seeds: Iterable[int], latent_dim: int) -> np.ndarray:
    """Stacked latents [len(seeds), latent_dim] float32, one row per seed, in order."""
    seeds = check_seeds(seeds)
    if latent_dim <= 0:
        raise TganError(f"latent_dim must be positive, got {latent_dim}")
    return np.stack([latent(int(s), latent_dim) for s in seeds])

"""The seeds -> latents contract: numpy's default_rng(seed).standard_normal(dim) cast to float32."""

from __future__ import annotations

import numpy as np
import pytest

from tgan_deploy.errors import TganError
from tgan_deploy.runtime.latents import InvalidSeedError, latent, latents


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 + 5, 2**63])
def test_each_seed_is_numpys_default_rng(seed: int) -> None:
    want = np.random.default_rng(seed).standard_normal(100).astype(np.float32)
    got = latents([seed], 100)
    assert got.dtype == np.float32 and got.shape == (1, 100)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(latent(seed, 100), want)


def test_stacking_order_and_repeats() -> None:
    seeds = [7, 3, 7, 0, np.int64(12)]
    got = latents(seeds, 16)
    assert got.shape == (5, 16)
    for row, seed in zip(got, seeds, strict=True):
        np.testing.assert_array_equal(row, np.random.default_rng(int(seed)).standard_normal(16).astype(np.float32))
    np.testing.assert_array_equal(got[0], got[2])
    assert not np.array_equal(got[0], got[1])
    np.testing.assert_array_equal(latents(range(3), 4), latents([0, 1, 2], 4))  # any iterable, in order


def test_a_seed_does_not_depend_on_its_neighbours_or_the_batch() -> None:
    np.testing.assert_array_equal(latents([5, 6, 7], 8)[1], latents([6], 8)[0])


@pytest.mark.parametrize("seeds", [[-1], [1.0], [1.5], [True], [False], ["3"], [0, None], []])
def test_bad_seeds(seeds: list) -> None:
    with pytest.raises(InvalidSeedError) as info:
        latents(seeds, 8)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, TganError) and isinstance(info.value, ValueError)


def test_bad_latent_dim() -> None:
    with pytest.raises(TganError, match="latent_dim must be positive"):
        latents([1], 0)

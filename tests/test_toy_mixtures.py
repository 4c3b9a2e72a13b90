"""PacGAN's 2-D mixtures (docs/method.md §6.1): the centres and spreads the metrics assume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tgan_deploy.data.toy import MIXTURES


def test_ring8_has_eight_distinct_centres_on_the_unit_circle() -> None:
    ring = MIXTURES["ring8"]
    k = np.arange(8)
    np.testing.assert_allclose(ring.centres, np.stack([np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)], 1),
                               atol=1e-15)
    distances = [np.linalg.norm(a - b) for a, b in itertools.combinations(ring.centres, 2)]
    assert min(distances) > 0.7  # 8 modes, not linspace(0, 2 pi, 8)'s 7
    assert ring.std == 0.01


def test_grid25() -> None:
    grid = MIXTURES["grid25"]
    ticks = [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert sorted(map(tuple, grid.centres.tolist())) == sorted(itertools.product(ticks, ticks))
    assert grid.std == 0.05


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples(name: str) -> None:
    mixture = MIXTURES[name]
    points = mixture.sample(20_000, np.random.default_rng(0))
    assert points.shape == (20_000, 2) and points.dtype == np.float32
    nearest = np.argmin(((points[:, None, :] - mixture.centres[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(mixture.centres))
    assert counts.min() > 0.7 * 20_000 / len(mixture.centres)  # every mode, roughly uniformly
    offsets = points - mixture.centres[nearest]
    assert offsets.std() == pytest.approx(mixture.std, rel=0.05)
    np.testing.assert_array_equal(points, mixture.sample(20_000, np.random.default_rng(0)))

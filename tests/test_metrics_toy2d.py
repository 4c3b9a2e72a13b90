"""PacGAN's 2-D mixture metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.metrics.histogram import kl_to_uniform
from tgan_deploy.metrics.toy2d import mode_metrics

# A 2-D isotropic Gaussian sample lies within 3 std of its centre with probability P(chi2_2 < 9) = 1 - e^-4.5.
HQ_OF_PERFECT_SAMPLES = 100 * (1 - math.exp(-4.5))  # 98.89 %


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples_of_the_mixture_itself_score_all_modes_and_near_zero_kl(name: str) -> None:
    mixture = MIXTURES[name]
    m = mode_metrics(mixture.sample(2500, np.random.default_rng(0)), mixture)
    assert m.modes == m.total_modes == len(mixture.centres)
    # binomial std of the HQ fraction at n = 2,500 is 0.21 %
    assert abs(m.hq_percent - HQ_OF_PERFECT_SAMPLES) < 1.0
    assert m.reverse_kl < 0.02  # multinomial noise alone: about (K - 1) / (2 n) = 0.0014 (ring), 0.005 (grid)
    assert sum(m.per_mode_counts) == round(m.hq_percent * m.n / 100)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_all_samples_at_one_centre_cover_one_mode_with_kl_log_k(name: str) -> None:
    mixture = MIXTURES[name]
    points = np.repeat(mixture.centres[3:4], 2500, axis=0)
    m = mode_metrics(points, mixture)
    assert (m.modes, m.hq_percent) == (1, 100.0)
    assert m.reverse_kl == pytest.approx(math.log(len(mixture.centres)), abs=1e-12)
    assert m.per_mode_counts[3] == 2500


def test_samples_split_evenly_over_half_the_modes_give_kl_log_2() -> None:
    mixture = MIXTURES["ring8"]
    points = np.repeat(mixture.centres[::2], 100, axis=0)  # 4 of 8 modes, 100 each
    m = mode_metrics(points, mixture)
    assert m.modes == 4
    assert m.reverse_kl == pytest.approx(math.log(2), abs=1e-12)


def test_samples_far_from_every_centre_are_not_high_quality_and_kl_is_undefined() -> None:
    # Convention (as PacGAN's code): no HQ sample -> 0 modes, 0 % HQ, reverse KL NaN (0/0 histogram).
    m = mode_metrics(np.full((50, 2), 100.0), MIXTURES["grid25"])
    assert (m.modes, m.hq_percent, sum(m.per_mode_counts)) == (0, 0.0, 0)
    assert math.isnan(m.reverse_kl)


def test_hq_threshold_is_three_std_strict_and_nan_points_never_count() -> None:
    mixture = MIXTURES["ring8"]
    c, std = mixture.centres[0], mixture.std
    points = np.array([c + np.array([2.999 * std, 0]), c + np.array([0, 3.001 * std]), [np.nan, np.nan]])
    m = mode_metrics(points, mixture)
    assert m.per_mode_counts[0] == 1
    assert m.hq_percent == pytest.approx(100 / 3)


def test_kl_to_uniform_matches_scipy_entropy() -> None:
    from scipy.stats import entropy

    counts = np.array([5, 0, 3, 12, 1])
    assert kl_to_uniform(counts) == pytest.approx(math.log(5) - entropy(counts / counts.sum()), abs=1e-12)
    assert kl_to_uniform(counts) == pytest.approx(entropy(counts / counts.sum(), np.full(5, 0.2)), abs=1e-12)

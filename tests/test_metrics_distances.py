"""Fréchet distance, KID and precision/recall against closed forms and hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tgan_deploy.errors import TganError
from tgan_deploy.metrics.frechet import GaussianStats, frechet_distance, frechet_distance_features
from tgan_deploy.metrics.kid import kernel_distance, mmd2_unbiased, polynomial_kernel
from tgan_deploy.metrics.prc import precision_recall


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # ||mu1 - mu2||^2 + sum (sqrt v1 - sqrt v2)^2 = (1 + 0 + 6.25) + (4 + 1 + 0) = 12.25
    d = frechet_distance(GaussianStats(mu1, np.diag(v1), 0), GaussianStats(mu2, np.diag(v2), 0))
    assert d == pytest.approx(12.25, abs=1e-10)


def test_frechet_distance_of_equal_full_covariances_is_the_mean_distance() -> None:
    a = np.random.default_rng(0).standard_normal((4, 4))
    sigma = a @ a.T + np.eye(4)
    d = frechet_distance(GaussianStats(np.zeros(4), sigma, 0), GaussianStats(np.full(4, 0.5), sigma, 0))
    assert d == pytest.approx(1.0, abs=1e-8)


def test_frechet_distance_from_samples_approaches_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20000, 2)) * [1.0, 2.0]
    y = rng.standard_normal((20000, 2)) * [3.0, 2.0] + [1.0, 0.0]
    assert frechet_distance_features(x, y) == pytest.approx(1.0 + 4.0, rel=0.05)  # (1)^2 + (1 - 3)^2


def test_frechet_distance_of_singular_covariances_stays_finite() -> None:
    # Rank-1 covariances (fewer distinct directions than dimensions): the result stays finite and >= 0.
    x = np.outer(np.arange(10.0), [1.0, 1.0, 0.0])
    d = frechet_distance_features(x, x + np.array([0.0, 0.0, 1.0]))
    assert np.isfinite(d) and d == pytest.approx(1.0, abs=1e-3)


def test_frechet_distance_rejects_mismatched_features() -> None:
    with pytest.raises(TganError, match="dimensions differ"):
        frechet_distance_features(np.zeros((5, 2)), np.zeros((5, 3)))


def test_unbiased_mmd2_matches_a_brute_force_sum() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)) + 0.5

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / 3 + 1) ** 3)

    m = len(x)
    expected = (sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
                + sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
                - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2)
    got = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    assert got == pytest.approx(expected, rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    real = rng.standard_normal((1000, 16))
    same = rng.standard_normal((1000, 16))
    shifted = rng.standard_normal((1000, 16)) + 0.5
    kid_same = kernel_distance(real, same, subsets=20, subset_size=500)
    kid_shift = kernel_distance(real, shifted, subsets=20, subset_size=500)
    assert abs(kid_same.mean) < 3 * kid_same.std + 1e-3
    assert kid_shift.mean > 10 * max(abs(kid_same.mean), kid_same.std)
    assert kid_shift.subset_size == 500


def test_kid_subset_size_is_capped_at_the_smaller_set() -> None:
    rng = np.random.default_rng(4)
    assert kernel_distance(rng.standard_normal((50, 4)), rng.standard_normal((80, 4)), subsets=2).subset_size == 50


def test_precision_recall_cases() -> None:
    rng = np.random.default_rng(5)
    two_clusters = np.concatenate([rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) + 20])
    same = precision_recall(two_clusters, two_clusters.copy())
    assert (same.precision, same.recall) == (1.0, 1.0)
    one_cluster = rng.standard_normal((200, 2))  # fakes cover only the first cluster
    collapsed = precision_recall(two_clusters, one_cluster)
    assert collapsed.precision > 0.9 and 0.4 < collapsed.recall < 0.6
    far = precision_recall(two_clusters, one_cluster + 100)
    assert (far.precision, far.recall) == (0.0, 0.0)

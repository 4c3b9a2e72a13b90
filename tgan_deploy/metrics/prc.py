"""Improved precision and recall (Kynkäänniemi et al., arXiv:1904.06991).

The real manifold is the union of balls around each real feature vector with radius = distance to its
k-th nearest real neighbour (k = 3 in the paper); precision = fraction of generated vectors inside it.
Recall swaps the roles: fraction of real vectors inside the generated manifold. Euclidean distances in
float64; a point does not count as its own neighbour.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tgan_deploy.errors import TganError
from tgan_deploy.metrics.defaults import DEFAULTS


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _manifold_coverage(manifold: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Fraction of `queries` within the k-NN radius of at least one point of `manifold`."""
    radii = np.sort(_pairwise_distances(manifold, manifold), axis=1)[:, k]  # column 0 is the point itself
    inside = (_pairwise_distances(queries, manifold) <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = DEFAULTS["prc_k"]) -> PrecisionRecall:
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1] or min(len(real), len(fake)) <= k:
        raise TganError(f"precision/recall needs two feature matrices [n, d] with n > k = {k}, "
                        f"got {list(real.shape)} and {list(fake.shape)}")
    return PrecisionRecall(_manifold_coverage(real, fake, k), _manifold_coverage(fake, real, k), k)

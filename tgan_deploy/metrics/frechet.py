"""Fréchet distance between Gaussian fits of two feature sets (Heusel et al., arXiv:1706.08500).

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

Numerics follow pytorch-fid's `calculate_frechet_distance` (mseitzer/pytorch-fid, also used by clean-fid):
scipy.linalg.sqrtm of S1 @ S2; if that is not finite, retry with eps * I added to both covariances; a
complex result is accepted only if the imaginary part of its diagonal is below 1e-3 (then the real part
is kept), otherwise it is an error. Covariances are np.cov(rowvar=False) (N - 1 normalisation), in float64.
The number is only as meaningful as the feature space: name it after its extractor (FID = Inception only).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import linalg

from tgan_deploy.errors import TganError
from tgan_deploy.metrics.defaults import DEFAULTS


@dataclasses.dataclass(frozen=True)
class GaussianStats:
    mu: np.ndarray  # [d]
    sigma: np.ndarray  # [d, d]
    n: int

    @classmethod
    def of(cls, features: np.ndarray) -> GaussianStats:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise TganError(f"need at least 2 feature vectors [n, d] to fit a Gaussian, got {list(features.shape)}")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def frechet_distance(stats1: GaussianStats, stats2: GaussianStats, eps: float = DEFAULTS["fd_eps"]) -> float:
    """Squared Fréchet distance between N(mu1, S1) and N(mu2, S2) (pytorch-fid's numerics)."""
    mu1, mu2 = np.atleast_1d(stats1.mu), np.atleast_1d(stats2.mu)
    s1, s2 = np.atleast_2d(stats1.sigma), np.atleast_2d(stats2.sigma)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise TganError(f"feature dimensions differ ({mu1.shape[0]} vs {mu2.shape[0]}): "
                        "compare features from the same extractor")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are handled below, as pytorch-fid's disp=False does
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # The product is (nearly) singular, e.g. fewer samples than dimensions or dead features.
        offset = np.eye(s1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise TganError(f"Fréchet distance: sqrtm has an imaginary component {np.abs(covmean.imag).max():.3g}; "
                            "use more samples than feature dimensions")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def frechet_distance_features(features1: np.ndarray, features2: np.ndarray,
                              eps: float = DEFAULTS["fd_eps"]) -> float:
    """Fréchet distance between Gaussian fits of two feature matrices [n1, d] and [n2, d]."""
    return frechet_distance(GaussianStats.of(features1), GaussianStats.of(features2), eps)

"""PacGAN's mode-collapse metrics on 2-D Gaussian mixtures (arXiv:1712.04086 §5; VEEGAN uses the same).

Checked against the reference code (fjxmlzn/PacGAN, synthetic_data_experiments/PacGAN/pacgan/extensions.py,
MetricLogger): each sample is assigned to the centre with the smallest normalised distance
sqrt(sum((x - mean)^2 / variance)) (= Euclidean distance / std for our isotropic, equal-std centres); it is
high quality (HQ) if that distance is strictly below 3; the per-mode histogram counts HQ samples only;
modes = non-empty bins; "good points percentage" = HQ / all samples; entropy = scipy.stats.entropy of the
normalised histogram (natural log), so reverse KL = log K - entropy. With zero HQ samples their histogram
is 0/0 and every derived number is NaN: we report reverse_kl = NaN, modes = 0, hq_percent = 0.
The reference evaluates 2,500 samples from fixed latents.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tgan_deploy.data.toy import Mixture
from tgan_deploy.errors import TganError
from tgan_deploy.metrics.defaults import DEFAULTS
from tgan_deploy.metrics.histogram import covered, kl_to_uniform


@dataclasses.dataclass(frozen=True)
class ModeMetrics:
    modes: int  # modes with at least one HQ sample
    total_modes: int  # K
    hq_percent: float  # 100 * HQ samples / all samples
    reverse_kl: float  # KL(HQ histogram || uniform) in nats; NaN when there is no HQ sample
    per_mode_counts: list[int]  # HQ samples per mode, in the order of the mixture's centres
    n: int  # samples evaluated

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def mode_metrics(points: np.ndarray, mixture: Mixture,
                 threshold_std: float = DEFAULTS["hq_threshold_std"]) -> ModeMetrics:
    """Modes covered, HQ % and reverse KL of generated `points` [n, 2] against `mixture`."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != mixture.centres.shape[1] or len(points) == 0:
        raise TganError(f"expected generated points of shape [n, {mixture.centres.shape[1]}] with n >= 1, "
                        f"got {list(points.shape)}: evaluate a generator trained on a 2-D mixture")
    dist = _normalised_distances(points, mixture)
    nearest = np.argmin(np.nan_to_num(dist, nan=np.inf), axis=1)
    nearest_dist = dist[np.arange(len(points)), nearest]
    hq = nearest_dist < threshold_std  # strict, as the reference; NaN points are never HQ
    counts = np.bincount(nearest[hq], minlength=len(mixture.centres))
    return ModeMetrics(
        modes=covered(counts, 1),
        total_modes=len(mixture.centres),
        hq_percent=100.0 * float(hq.sum()) / len(points),
        reverse_kl=kl_to_uniform(counts),
        per_mode_counts=[int(c) for c in counts],
        n=len(points),
    )


def nearest_centre(points: np.ndarray, mixture: Mixture) -> np.ndarray:
    """int64 [n]: the index of each point's nearest centre (normalised distance, as mode_metrics assigns)."""
    dist = _normalised_distances(np.asarray(points, dtype=np.float64), mixture)
    return np.argmin(np.nan_to_num(dist, nan=np.inf), axis=1)


def _normalised_distances(points: np.ndarray, mixture: Mixture) -> np.ndarray:
    """[n, K] distance of each point to each centre divided by the centre's std."""
    stds = np.broadcast_to(np.asarray(mixture.std, dtype=np.float64), (len(mixture.centres),))
    return np.linalg.norm(points[:, None, :] - mixture.centres[None, :, :], axis=2) / stds[None, :]

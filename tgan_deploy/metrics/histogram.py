"""Histograms over modes or classes: KL to the uniform distribution and coverage.

Shared by the 2-D mixture metrics (modes) and the classifier metrics (predicted classes).
"""

from __future__ import annotations

import math

import numpy as np


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(h || uniform) = log K - entropy(h) in nats, h = counts / counts.sum().

    This is PacGAN's "reverse KL": its code logs scipy.stats.entropy(h) (natural log) of exactly this
    histogram. Empty bins contribute 0 (0 log 0 = 0). With no counts at all h is undefined: PacGAN's
    code divides 0 by 0 and logs NaN, and so do we.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return math.nan
    h = counts[counts > 0] / total
    entropy = float(-(h * np.log(h)).sum())
    return max(0.0, math.log(len(counts)) - entropy)  # clamp the -1e-16 rounding of a perfect histogram


def covered(counts: np.ndarray, min_count: float) -> int:
    """Number of bins holding at least `min_count` (> 0) entries."""
    return int((np.asarray(counts) >= min_count).sum())

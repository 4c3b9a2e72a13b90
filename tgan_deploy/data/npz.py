"""An .npz file of images or 2-D points (loaded with allow_pickle=False: never unpickles).

The array is the one named "images" (or "points"), else the file's only array. Accepted shapes:
  [N, 2]                      2-D points (any real dtype) for model.arch mlp
  [N, H, W]                   grayscale images
  [N, H, W, C] or [N, C, H, W] with C in 1, 3, 4 (NHWC when the last axis is 1/3/4, else NCHW)
Image values: uint8 0..255 (any integer dtype with values in 0..255), or floats in [0, 1] or in [-1, 1]
(read as [-1, 1] when any value is negative). Images are stored as uint8, resized and converted like files.

Labels: an optional `labels` array [N], either integers 0..K-1 (with an optional `classes` array of K
names, default "0".."K-1") or strings (the classes are then the sorted distinct names).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tgan_deploy.config import ModelConfig
from tgan_deploy.data.images import fit_array
from tgan_deploy.data.training_data import TrainingData
from tgan_deploy.errors import DataError

_SHAPES = "[N, 2] points, [N, H, W], [N, H, W, C] or [N, C, H, W] images with C in 1, 3, 4"


LABEL_KEYS = ("labels", "classes")


def load_npz(path: Path, model_cfg: ModelConfig) -> TrainingData:
    array, labels, classes = _read_arrays(path)
    if array.ndim == 2 and array.shape[1] == 2:
        return TrainingData(_points(path, array), "points", str(path), labels=labels, classes=classes)
    return TrainingData(fit_array(_images_nchw(path, array), model_cfg.resolution, model_cfg.channels),
                        "image", str(path), labels=labels, classes=classes)


def array_shape(path: Path) -> tuple[int, ...]:
    """The training array's shape, read from its .npy header alone (the data is not loaded)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = {n.removesuffix(".npy"): n for n in archive.namelist() if n.endswith(".npy")}
            with archive.open(names[_training_key(path, list(names))]) as member:
                version = np.lib.format.read_magic(member)
                shape, _, _ = (np.lib.format.read_array_header_1_0(member) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(member))
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, exc) from exc
    return tuple(shape)


def _training_key(path: Path, keys: list[str]) -> str:
    keys = [k for k in keys if k not in LABEL_KEYS]
    key = next((k for k in ("images", "points") if k in keys), keys[0] if len(keys) == 1 else None)
    if key is None:
        raise DataError(f"{path} holds arrays {keys or '(none)'}: name the training array 'images' "
                        f"(np.savez(path, images=x))")
    return key


def _unreadable(path: Path, exc: Exception) -> DataError:
    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    return DataError(f"cannot read {path} as .npz ({reason}): save it with numpy.savez and plain numeric arrays")


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(training array, labels or None, class names)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            array = npz[_training_key(path, list(npz.keys()))]
            labels = npz.get("labels")
            names = npz.get("classes")
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # not a zip, truncated, object arrays
        raise _unreadable(path, exc) from exc
    if array.dtype.kind not in "uif" or array.dtype.kind == "b":
        raise DataError(f"{path}: array dtype {array.dtype} is not numeric: save uint8 or float images")
    if array.shape[:1] == (0,) or array.size == 0:
        raise DataError(f"{path}: the array is empty (shape {array.shape}): it needs at least one item")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{path}: the array contains NaN or infinite values: clean the data")
    if labels is None:
        if names is not None:
            raise DataError(f"{path} has 'classes' but no 'labels': add labels (np.savez(path, images=x, labels=y))")
        return array, None, []
    ints, classes = _labels(path, labels, names, len(array))
    return array, ints, classes


def _labels(path: Path, labels: np.ndarray, names: np.ndarray | None, n: int) -> tuple[np.ndarray, list[str]]:
    """int64 labels and class names from an .npz's `labels` (integers or strings) and optional `classes`."""
    if labels.shape != (n,):
        raise DataError(f"{path}: 'labels' has shape {labels.shape}, expected one label per item ({n},)")
    if labels.dtype.kind == "U":
        if names is not None:
            raise DataError(f"{path}: 'labels' are names already; drop 'classes' or store integer labels")
        distinct, index = np.unique(labels, return_inverse=True)
        return index.astype(np.int64), [str(c) for c in distinct]
    if labels.dtype.kind not in "ui":
        raise DataError(f"{path}: 'labels' must be integers 0..K-1 or strings, got dtype {labels.dtype}")
    if names is not None and (names.ndim != 1 or names.dtype.kind != "U" or len(set(names.tolist())) != len(names)
                              or not all(names.tolist())):
        raise DataError(f"{path}: 'classes' must be distinct non-empty strings, one per class")
    count = len(names) if names is not None else int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= count:
        raise DataError(f"{path}: 'labels' must lie in 0..{count - 1} (one per class), "
                        f"found {labels.min()}..{labels.max()}")
    classes = [str(c) for c in names] if names is not None else [str(k) for k in range(count)]
    return labels.astype(np.int64), classes


def _points(path: Path, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def image_channels(shape: tuple[int, ...]) -> int | None:
    """Colour channels of an image array of this shape (1, 3 or 4); None if it is not an accepted image shape."""
    if len(shape) == 3:
        return 1
    if len(shape) == 4 and shape[-1] in (1, 3, 4):  # NHWC
        return shape[-1]
    if len(shape) == 4 and shape[1] in (1, 3, 4):  # NCHW
        return shape[1]
    return None


def _images_nchw(path: Path, array: np.ndarray) -> np.ndarray:
    channels = image_channels(array.shape)
    if channels is None:
        raise DataError(f"{path}: array shape {array.shape} is not accepted: use {_SHAPES}")
    if array.ndim == 3:
        array = array[:, None]
    elif array.shape[-1] == channels:
        array = array.transpose(0, 3, 1, 2)
    return _to_uint8(path, array)


def _to_uint8(path: Path, array: np.ndarray) -> np.ndarray:
    lo, hi = float(array.min()), float(array.max())
    if array.dtype.kind in "ui":
        if lo < 0 or hi > 255:
            raise DataError(f"{path}: integer images must lie in 0..255, found {lo:g}..{hi:g}: rescale to uint8")
        return array.astype(np.uint8)
    if lo < -1 or hi > 1:
        raise DataError(f"{path}: float images must lie in [0, 1] or [-1, 1], found [{lo:g}, {hi:g}]: "
                        f"rescale, or save uint8 for 0..255 values")
    unit = (array + 1) / 2 if lo < 0 else array  # -> [0, 1]
    return np.rint(unit * 255).astype(np.uint8)

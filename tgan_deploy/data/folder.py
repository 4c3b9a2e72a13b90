"""Image folders: find images recursively, decode + resize each ONCE, keep the result in a disk cache.

Why pre-decode instead of decoding per batch: a T-GAN step is cheap (a DCGAN at 64x64), so per-step JPEG
decoding and LANCZOS resizing would starve the GPU unless many worker processes ran. Decoding once (in a
thread pool: Pillow releases the GIL while decoding and resizing) into a uint8 [N, C, R, R] array costs
12 KB per 64x64 RGB image (CelebA's 200k: 2.4 GB), and the array is a memory-mapped .npy in the cache, so
the OS pages it in and shares it with DataLoader workers, a rerun or a resume starts in milliseconds, and
the process does not need the data set's size in RAM. The cache key covers every file's path, size and
mtime plus the resolution and channels: changing the folder makes a new entry. Entries may be deleted
at any time. data.cache_dir = "none" decodes into RAM instead.

Unreadable files (not an image, truncated, ...) are skipped with one warning; if more than
data.max_bad_fraction of the files are bad, loading fails (a folder of mostly non-images is a mistake).
Names starting with "." (hidden files, macOS "._x.jpg" forks) are ignored. Mixed sizes and modes are fine:
everything is converted and resized (see images.py).

Labels come from the layout, no JSON: when every image sits in a sub-folder of the root (`root/CLASS/...`,
any depth below CLASS) and there are at least two such folders, the folder names, sorted, are the classes.
Images directly in the root, or a single sub-folder (e.g. CelebA's img_align_celeba/), mean no labels.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from tgan_deploy.cache import cache_dir
from tgan_deploy.config import DataConfig, ModelConfig
from tgan_deploy.data.images import GRAYSCALE_MODES, prepare
from tgan_deploy.data.training_data import TrainingData
from tgan_deploy.errors import DataError
from tgan_deploy.io import atomic_path, write_json_atomic

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CACHE_FORMAT = 1  # bump when decoding changes, so old cache entries are not reused
_CHUNK = 512  # images decoded per thread-pool round (bounds memory held in flight)


class DataWarning(UserWarning):
    """Training data had a problem that was worked around (e.g. unreadable files skipped)."""


def find_images(root: Path) -> list[Path]:
    """Image files under `root` (recursive, sorted, hidden names skipped); DataError if there are none."""
    found: list[Path] = []
    others: list[Path] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        (found if path.suffix.lower() in IMAGE_SUFFIXES else others).append(rel)
    if not found:
        holds = f"; it holds {len(others)} other file(s), e.g. {others[0]}" if others else "; it is empty"
        raise DataError(f"no images found under {root} (looked for {', '.join(IMAGE_SUFFIXES)}){holds}: "
                        f"point data.source at a folder of images")
    return [root / rel for rel in found]


def folder_classes(root: Path, files: list[Path]) -> tuple[np.ndarray, list[str]] | None:
    """(int64 label per file, sorted class names) from `root/CLASS/...`; None if the layout gives no classes."""
    tops = [path.relative_to(root).parts for path in files]
    if any(len(parts) < 2 for parts in tops):
        return None
    classes = sorted({parts[0] for parts in tops})
    if len(classes) < 2:
        return None
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[parts[0]] for parts in tops], dtype=np.int64), classes


def folder_channels(root: Path, sample: int = 256) -> int:
    """1 if the folder's images are grayscale, else 3: the modes of up to `sample` files spread evenly over it.

    Only headers are read (Pillow opens lazily). Any colour image among them makes it 3, and so does finding
    no readable one; unreadable files are passed over here (loading reports them).
    """
    files = find_images(root)
    step = max(1, len(files) // sample)
    grey = 0
    for path in files[::step][:sample]:
        try:
            with Image.open(path) as img:
                if img.mode not in GRAYSCALE_MODES:
                    return 3
                grey += 1
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return 1 if grey else 3


def data_cache_dir(data_cfg: DataConfig) -> Path | None:
    if data_cfg.cache_dir.lower() == "none":
        return None
    if data_cfg.cache_dir:
        return Path(data_cfg.cache_dir).expanduser()
    return cache_dir("data")


def load_folder(root: Path, model_cfg: ModelConfig, data_cfg: DataConfig) -> TrainingData:
    files = find_images(root)
    shape = (model_cfg.channels, model_cfg.resolution, model_cfg.resolution)
    cache = data_cache_dir(data_cfg)
    if cache is None:
        images, bad = _decode_all(files, shape, data_cfg, root, np.empty((len(files), *shape), np.uint8))
        return _labelled(TrainingData(images, "image", str(root), skipped=len(bad)), root, files, bad)
    key = _cache_key(root, files, shape)
    array_path, meta_path = cache / f"{key}.npy", cache / f"{key}.json"
    cached = _open_cached(array_path, meta_path, shape)
    if cached is not None and cached[1]:
        warnings.warn(f"skipped {len(cached[1])} unreadable file(s) under {root} (found when it was decoded into "
                      f"the cache {array_path})", DataWarning, stacklevel=3)
    if cached is None:
        try:
            _decode_into_cache(files, shape, data_cfg, root, array_path, meta_path)
        except OSError as exc:  # unwritable cache folder, disk full
            raise DataError(f"cannot write the data cache {array_path} ({exc.strerror or exc}): set data.cache_dir "
                            f"to a writable folder, or to none to keep the decoded images in RAM") from exc
        cached = _open_cached(array_path, meta_path, shape)
        if cached is None:
            raise DataError(f"the data cache {array_path} could not be read back: set data.cache_dir none")
    array, skipped = cached
    return _labelled(TrainingData(array, "image", str(root), skipped=len(skipped)), root, files, skipped)


def _labelled(data: TrainingData, root: Path, files: list[Path], skipped: list[int]) -> TrainingData:
    """`data` with the folder layout's labels (those of the skipped files left out), if it has classes."""
    found = folder_classes(root, files)
    if found is None:
        return data
    labels, classes = found
    kept = np.delete(labels, skipped)
    return TrainingData(data.array, data.kind, data.source, data.skipped, labels=kept, classes=classes)


def _decode_into_cache(files: list[Path], shape: tuple[int, ...], data_cfg: DataConfig, root: Path,
                       array_path: Path, meta_path: Path) -> None:
    with atomic_path(array_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), *shape))
        images, bad = _decode_all(files, shape, data_cfg, root, out)
        out.flush()
        if bad:  # replace the file by one that holds exactly the readable images
            with atomic_path(tmp) as packed_path:
                packed = np.lib.format.open_memmap(packed_path, mode="w+", dtype=np.uint8, shape=images.shape)
                packed[:] = images
                packed.flush()
                del packed
        del out, images
    write_json_atomic(meta_path, {"source": str(root.resolve()), "count": len(files) - len(bad),
                                  "skipped": len(bad), "skipped_index": bad, "shape": list(shape),
                                  "format": CACHE_FORMAT})


def _cache_key(root: Path, files: list[Path], shape: tuple[int, ...]) -> str:
    h = hashlib.sha256(json.dumps([CACHE_FORMAT, str(root.resolve()), shape]).encode())
    for path in files:
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _open_cached(array_path: Path, meta_path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, list[int]] | None:
    """(the cached array, indices of the files that were skipped as unreadable), or None to decode again."""
    try:
        meta = json.loads(meta_path.read_text())
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.shape != (meta.get("count"), *shape) or array.dtype != np.uint8:
        return None
    skipped = meta.get("skipped_index", [] if meta.get("skipped") == 0 else None)
    if skipped is None:  # written before labels existed: which files were skipped is unknown
        return None
    return array, [int(i) for i in skipped]


def _decode_one(path: Path, shape: tuple[int, ...]) -> np.ndarray | str:
    try:
        with Image.open(path) as img:
            return prepare(img, shape[1], shape[0])
    except Exception as exc:  # any decoder failure means "unreadable": Pillow raises many types
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}".rstrip(": ")


def _decode_all(files: list[Path], shape: tuple[int, ...], data_cfg: DataConfig, root: Path,
                out: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Decode into `out` (readable images packed first); returns (out[:good], indices of the bad files)."""
    from tqdm import tqdm

    bad: list[tuple[int, Path, str]] = []
    good = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
            tqdm(total=len(files), desc=f"decoding {root.name or root}", unit="img", disable=None) as bar:
        for start, chunk in _chunks(files, _CHUNK):
            for i, (path, result) in enumerate(zip(chunk, pool.map(lambda p: _decode_one(p, shape), chunk),
                                                   strict=True), start):
                if isinstance(result, str):
                    bad.append((i, path, result))
                else:
                    out[good] = result
                    good += 1
            bar.update(len(chunk))
    if bad:
        example = f"e.g. {bad[0][1].relative_to(root)} ({bad[0][2]})"
        if good == 0 or len(bad) > data_cfg.max_bad_fraction * len(files):
            raise DataError(f"{len(bad)} of {len(files)} files under {root} are not readable images, more than "
                            f"data.max_bad_fraction = {data_cfg.max_bad_fraction:g}, {example}: "
                            f"fix or remove them, or raise data.max_bad_fraction")
        warnings.warn(f"skipped {len(bad)} of {len(files)} files under {root} that are not readable images, "
                      f"{example}", DataWarning, stacklevel=4)
    return out[:good], [i for i, _, _ in bad]


def _chunks(items: list[Path], size: int) -> Iterator[tuple[int, list[Path]]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]

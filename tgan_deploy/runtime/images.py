"""Model output -> uint8 images, and files a user keeps (PNGs, grids, .npz), each written atomically.

The uint8 contract, by the model's `pixel_rule` (the same in numpy here and in an export's in-graph
post-processing, export/onnx.py):
    "tgan"   uint8 = clip(round_half_to_even((x + 1) * 127.5), 0, 255)     for x in [-1, 1]
    "nvlabs" uint8 = floor(clip(x * 127.5 + 128, 0, 255))                  NVlabs' generate.py (clamp, then
             .to(torch.uint8), which truncates), in float32 arithmetic, so an imported StyleGAN model's
             PNGs are byte for byte the ones its own code writes (up to the float image's own differences)
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy.io import atomic_path, write_bytes_atomic
from tgan_deploy.runtime.provenance import png_text


def to_uint8(images: np.ndarray, rule: str = "tgan") -> np.ndarray:
    """float images in [-1, 1] (any layout) -> uint8 in [0, 255], same layout, by pixel rule `rule` (module doc)."""
    x = images.astype(np.float32)
    if rule == "nvlabs":
        scaled = x * np.float32(127.5) + np.float32(128.0)  # two float32 roundings, as torch's mul then add
        out: np.ndarray = np.floor(np.clip(scaled, 0, 255)).astype(np.uint8)
        return out
    if rule != "tgan":
        raise ValueError(f"pixel rule {rule!r} is not tgan or nvlabs")
    out = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return out


def from_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 in [0, 255] -> float32 in [-1, 1] (quantised: within 1/255 of the float output)."""
    out: np.ndarray = images.astype(np.float32) / 127.5 - 1.0
    return out


def nchw_to_nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def _pil_image(image: np.ndarray) -> object:
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected a uint8 HWC image with 1 or 3 channels, got {image.dtype} {image.shape}")
    return Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)


def png_bytes(image: np.ndarray, text: Mapping[str, str] | None = None) -> bytes:
    """One uint8 HWC image -> PNG bytes, with `text` as tEXt chunks (keyword -> value)."""
    return encode_image(image, "png", text)


def save_png(path: str | Path, image: np.ndarray, info: Mapping[str, Any] | None = None) -> None:
    """One uint8 HWC image -> PNG file (atomic); `info` (how it was made) goes into its text chunks."""
    write_bytes_atomic(path, png_bytes(image, None if info is None else png_text(info)))


def seed_file_name(seed: int, suffix: str = ".png") -> str:
    return f"seed-{seed:06d}{suffix}"


def save_pngs(folder: str | Path, images: np.ndarray, seeds: Sequence[int]) -> list[Path]:
    """uint8 NHWC images -> FOLDER/seed-XXXXXX.png, one per seed; returns the paths."""
    folder = Path(folder)
    paths = [folder / seed_file_name(s) for s in seeds]
    for image, path in zip(images, paths, strict=True):
        save_png(path, image)
    return paths


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 NHWC images -> one uint8 HWC grid image, row-major, black padding."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = image
    return grid


def save_grid(path: str | Path, images: np.ndarray, columns: int | None = None) -> None:
    save_png(path, make_grid(images, columns))


def scatter_image(points: np.ndarray, size: int = 512, radius: int = 2) -> np.ndarray:
    """2-D points -> a white uint8 HWC image with a black dot per point (axes scaled to the data)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.maximum(high - low, 1e-6)
    margin = 0.05 * size
    xy = margin + (points - low) / span * (size - 2 * margin)
    for x, y in xy:
        draw.ellipse((x - radius, size - y - radius, x + radius, size - y + radius), fill="black")
    return np.asarray(canvas)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Arrays -> .npz (atomic; np.savez on a file handle so no ".npz" is appended to the temp name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


# Fixed encoder options per format: one image always encodes to the same bytes (Pillow writes no
# timestamps or other varying chunks), which is what makes bulk output byte-identical across runs.
ENCODER_OPTIONS: dict[str, dict[str, int]] = {"png": {}, "jpeg": {"quality": 95}, "webp": {"quality": 90, "method": 4}}


def encode_image(image: np.ndarray, image_format: str = "png", text: Mapping[str, str] | None = None) -> bytes:
    """One uint8 HWC image -> the bytes of a PNG, JPEG or WebP file (ENCODER_OPTIONS); PNG: `text` as tEXt chunks."""
    from PIL.PngImagePlugin import PngInfo

    options: dict[str, Any] = dict(ENCODER_OPTIONS[image_format])
    if text and image_format == "png":
        chunks = PngInfo()
        for key, value in text.items():
            chunks.add_text(key, value)
        options["pnginfo"] = chunks
    buffer = io.BytesIO()
    _pil_image(image).save(buffer, format=image_format.upper(), **options)  # type: ignore[attr-defined]
    return buffer.getvalue()

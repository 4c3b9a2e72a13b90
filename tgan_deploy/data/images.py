"""Pillow helpers: one image of any size and mode -> uint8 [C, R, R] (RGB or grayscale), centre-cropped.

Resizing: the shorter side is scaled to R (LANCZOS when shrinking, BICUBIC when enlarging, where LANCZOS
rings more), then the centre R x R is cropped, so non-square images keep their aspect ratio. Transparent
pixels are composited over white; 16-bit grayscale is scaled to 8 bits; grayscale -> RGB replicates.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# Pillow modes with one colour channel (LA/La: grey + alpha; I/F and the I;16 family: wide greys; 1: bilevel)
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
GRAYSCALE_MODES = ("1", "L", "LA", "La", *_WIDE_GREY_MODES)


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert to "L" (channels 1) or "RGB" (channels 3)."""
    mode = "L" if channels == 1 else "RGB"
    if img.mode in _WIDE_GREY_MODES:
        values = np.asarray(img, dtype=np.float64)
        if values.max(initial=0) > 255:  # 16-bit (or wider) samples
            values = values / 257.0
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if img.mode in _TRANSPARENT_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img if img.mode == mode else img.convert(mode)


def fit_square(img: Image.Image, resolution: int) -> Image.Image:
    """Scale the shorter side to `resolution`, then crop the centre square."""
    w, h = img.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))


def prepare(img: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """An opened image -> uint8 [channels, resolution, resolution]. Applies EXIF orientation (photos)."""
    if img.format == "JPEG":
        # Decode at a reduced DCT scale when the file is much larger than needed (keeps >= 2x the target).
        img.draft("L" if channels == 1 else "RGB", (2 * resolution, 2 * resolution))
    img = ImageOps.exif_transpose(img)
    arr = np.asarray(fit_square(to_mode(img, channels), resolution), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def fit_array(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """uint8 [N, C, H, W] (C 1, 3 or 4) -> uint8 [N, channels, resolution, resolution]."""
    n, c, h, w = images.shape
    if (h, w) == (resolution, resolution) and c == channels:
        return np.ascontiguousarray(images)
    if (h, w) == (resolution, resolution) and c == 1:
        return np.ascontiguousarray(np.repeat(images, channels, axis=1))
    out = np.empty((n, channels, resolution, resolution), dtype=np.uint8)
    for i in range(n):
        pixels = images[i, 0] if c == 1 else images[i].transpose(1, 2, 0)
        out[i] = prepare(Image.fromarray(np.ascontiguousarray(pixels)), resolution, channels)  # L, RGB or RGBA
    return out

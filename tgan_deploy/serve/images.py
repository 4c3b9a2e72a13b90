"""Image responses: PNG for one image, a grid, a strip; an animated GIF for an interpolation."""

from __future__ import annotations

import io

import numpy as np

from tgan_deploy.runtime.images import make_grid, png_bytes


def grid_png(images: np.ndarray, columns: int | None) -> bytes:
    return png_bytes(make_grid(images, columns))


def gif_bytes(frames: np.ndarray, frame_ms: int) -> bytes:
    """uint8 NHWC frames -> an endlessly looping GIF."""
    from PIL import Image

    pictures = [Image.fromarray(f[:, :, 0] if f.shape[2] == 1 else f) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()

"""Image responses: a grid or a strip as one PNG (GIFs: tgan_deploy.runtime.animation.gif_bytes)."""

from __future__ import annotations

import numpy as np

from tgan_deploy.runtime.images import make_grid, png_bytes


def grid_png(images: np.ndarray, columns: int | None) -> bytes:
    return png_bytes(make_grid(images, columns))

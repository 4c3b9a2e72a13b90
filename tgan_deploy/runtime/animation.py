"""Frames (uint8 [N, H, W, C]) -> an animated GIF, an MP4 video or a PNG strip; atomic, deterministic bytes.

- GIF (Pillow): loops forever; delays are stored in 1/100 s, so fps is rounded to 100/k; frames with more
  than 256 colours are reduced to 256 by median cut without dithering (grayscale and <= 256-colour frames
  stay exact). Pillow stores two identical consecutive frames once, with their delays added (same playback).
- MP4 (H.264 through PyAV, the `[video]` extra, whose wheels bundle FFmpeg with libx264): yuv420p, so odd
  sizes are padded by one edge pixel and colour is subsampled; one encoder thread keeps the bytes reproducible.
- PNG: every frame in one grid image, a single row unless `columns` says otherwise.
`info` (a JSON-able dict: how the frames were made, see provenance.py) goes into the GIF comment, the MP4
comment tag and the PNG's text chunks.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy._extras import require
from tgan_deploy.errors import TganError
from tgan_deploy.io import atomic_path, write_bytes_atomic
from tgan_deploy.runtime.images import make_grid, save_png
from tgan_deploy.runtime.provenance import info_text

ANIMATION_SUFFIXES = (".gif", ".mp4", ".png")
# Browsers and most viewers replay GIF delays under 20 ms as 100 ms: faster GIFs would play slower.
MAX_GIF_FPS = 50.0


def check_animation_target(path: Path, fps: float) -> None:
    """TganError for an output the writers cannot make, before any frame is computed."""
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise TganError(f"--out {path}: a walk is written as FILE.gif, FILE.mp4 or FILE.png (a strip of frames)")
    if not fps > 0 or fps == float("inf"):
        raise TganError(f"fps must be a number > 0 (e.g. 10), got {fps!r}")
    if suffix == ".gif" and fps > MAX_GIF_FPS:
        raise TganError(f"fps {fps} is too fast for a GIF (viewers slow delays under 20 ms to 100 ms): use "
                        f"--fps {MAX_GIF_FPS:g} or less, or write an .mp4")
    if suffix == ".mp4":
        require("av", "writing .mp4 videos")


def save_animation(path: str | Path, frames: np.ndarray, *, fps: float = 10.0, columns: int | None = None,
                   info: dict[str, Any] | None = None) -> None:
    """uint8 frames [N, H, W, C] (C = 1 or 3) -> `path` by its suffix (.gif, .mp4 or .png), atomically."""
    path = Path(path)
    check_animation_target(path, fps)
    info = info or {}
    suffix = path.suffix.lower()
    if suffix == ".gif":
        write_bytes_atomic(path, gif_bytes(frames, fps, info_text(info)))
    elif suffix == ".mp4":
        _save_mp4(path, frames, fps, info_text(info))
    else:
        save_png(path, make_grid(frames, columns or len(frames)), info)


def gif_bytes(frames: np.ndarray, fps: float, comment: str = "") -> bytes:
    images = [_palette_frame(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=round(1000 / fps), comment=comment.encode("ascii"))
    return buffer.getvalue()


def _palette_frame(frame: np.ndarray) -> Any:
    from PIL import Image

    if frame.shape[2] == 1:
        return Image.fromarray(frame[:, :, 0])  # "L": GIF's grayscale palette, exact
    return Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _save_mp4(path: Path, frames: np.ndarray, fps: float, comment: str) -> None:
    av = require("av", "writing .mp4 videos")
    h, w, c = frames.shape[1:]
    rgb = np.repeat(frames, 3, axis=3) if c == 1 else frames
    rgb = np.pad(rgb, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p needs even sizes
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                      options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv420p"
        # x264's output depends on its thread count, which defaults to the CPU count: one thread gives the
        # same bytes on every machine (with the same av wheel)
        stream.codec_context.options["threads"] = "1"
        for frame in rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                                   format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames

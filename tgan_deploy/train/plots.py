"""Pictures of a run: sample grids (images), sample scatter plots (2-D points), loss curves.

Every file is written atomically (a crash never leaves half a PNG). Plots use matplotlib's Agg
backend (no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgan_deploy.io import atomic_path


def image_grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> one uint8 picture [rows*H + pad, nrow*W + pad, C] with 2-px gutters."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    pad = 2
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top:top + h, left:left + w] = x[k].transpose(1, 2, 0)
    return grid


def save_image_grid(images: torch.Tensor, path: Path, nrow: int) -> None:
    from PIL import Image

    grid = image_grid(images, nrow)
    picture = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_scatter(points: torch.Tensor, reference: np.ndarray, path: Path, title: str) -> None:
    """Generated 2-D points over the real data's centres (or a sample of real points)."""
    plt = _figure()
    p = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.5, label="generated")
    ax.scatter(reference[:, 0], reference[:, 1], s=25, marker="x", color="red", label="real")
    lim = float(np.abs(reference).max()) * 1.5 + 0.5
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    _save(plt, fig, path)


def save_loss_plot(records: list[dict[str, Any]], path: Path) -> None:
    """Critic/generator losses and gradient norms against iteration, from metrics.jsonl records."""
    rows = [r for r in records if "d_loss" in r]
    if not rows:
        return
    plt = _figure()
    steps = [r["step"] for r in rows]
    fig, (ax_loss, ax_grad) = plt.subplots(2, 1, figsize=(7, 6), dpi=100, sharex=True)
    for key, label in (("d_loss", "critic loss"), ("g_loss", "generator loss")):
        ax_loss.plot(steps, [r[key] for r in rows], label=label)
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key, label in (("d_grad_norm", "critic |grad|"), ("g_grad_norm", "generator |grad|")):
        ax_grad.plot(steps, [r[key] for r in rows], label=label)
    ax_grad.set_yscale("log")
    ax_grad.set_ylabel("gradient norm")
    ax_grad.set_xlabel("iteration")
    ax_grad.legend()
    for step in (r["step"] for r in records if r.get("event") == "rollback"):
        ax_loss.axvline(step, color="red", linestyle=":")
    _save(plt, fig, path)


def save_eval_plot(records: list[dict[str, Any]], path: Path) -> None:
    """One panel per evaluation metric (run.eval_every) against iteration; nothing if none was logged."""
    names = sorted({k for r in records for k in r if k.startswith("eval/")})
    if not names:
        return
    plt = _figure()
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.2 * len(names)), dpi=100, sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        rows = [r for r in records if name in r]
        ax.plot([r["step"] for r in rows], [r[name] for r in rows], marker="o")
        ax.set_ylabel(name.removeprefix("eval/"))
    axes[-1, 0].set_xlabel("iteration")
    _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

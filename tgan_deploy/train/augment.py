"""Augmenting what the critic sees: DiffAugment and its adaptive form (augment.policy).

DiffAugment (Zhao et al., arXiv:2006.10738, "Differentiable Augmentation for Data-Efficient GAN Training"):
the same random, differentiable transforms are applied to real and fake images before the critic, in the
critic's and the generator's steps, so the critic cannot memorise a small training set while the generator
still learns the un-augmented distribution (its gradients pass through the transforms). The policy is the
paper's "color,translation,cutout" with its constants (images in [-1, 1]):
    brightness  x + U(-0.5, 0.5)                      per sample
    saturation  (x - mean_c) * U(0, 2) + mean_c       per sample, mean over channels
    contrast    (x - mean) * U(0.5, 1.5) + mean       per sample, mean over all pixels
                (the three in this order, computed as one affine expression: `colour`)
    translation shift by up to 1/8 of the size in x and y, zero fill
    cutout      one zeroed square of half the size, at a random centre
ADA (Karras et al., arXiv:2006.06676, "Training Generative Adversarial Networks with Limited Data") applies
each of the five transforms to a sample with probability p and adapts p from the overfitting signal
r_t = E[sign(...)] of the critic on real data (`AdaController`; for the pair critic see docs/method-notes.md).

Random numbers come from the trainer's noise generator, which checkpoints carry, so augmented runs resume
exactly; the generator's graph is untouched (the exported model is the same with or without augmentation).
"""

from __future__ import annotations

from typing import Any

import torch

from tgan_deploy.config import AugmentConfig

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _draw(x: torch.Tensor, generator: torch.Generator, low: float, high: float, keep: torch.Tensor | None,
          identity: float) -> torch.Tensor:
    """One per-sample factor U(low, high) [B, 1, 1, 1]; `identity` where `keep` (ADA's "not chosen") is set."""
    u = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype) * (high - low) + low
    return u if keep is None else u.masked_fill(keep.view(-1, 1, 1, 1), identity)


def colour(x: torch.Tensor, generator: torch.Generator, skip: list[torch.Tensor | None]) -> torch.Tensor:
    """Brightness, then saturation, then contrast, composed into one expression (they are affine per sample):
    with u, s, c the three factors, mean_c the per-pixel channel mean and mean the per-sample mean,
        contrast(saturation(brightness(x))) = c s x + c (1 - s) mean_c(x) + (1 - c) mean(x) + u
    (saturation keeps the mean, and is the identity on one channel, where mean_c(x) = x)."""
    u = _draw(x, generator, -0.5, 0.5, skip[0], 0.0)
    s = _draw(x, generator, 0.0, 2.0, skip[1], 1.0)
    c = _draw(x, generator, 0.5, 1.5, skip[2], 1.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    if x.shape[1] == 1:
        return c * x + (1 - c) * mean + u
    return (c * s) * x + (c * (1 - s)) * x.mean(dim=1, keepdim=True) + (1 - c) * mean + u


def translation(x: torch.Tensor, generator: torch.Generator, skip: torch.Tensor | None) -> torch.Tensor:
    """Integer shifts in [-s, s] per sample (s = 1/8 of the size), zero fill: one gather from a padded copy
    (its backward is one scatter-add)."""
    n, c, h, w = x.shape
    sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator, device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator, device=x.device)
    if skip is not None:
        dy, dx = dy.masked_fill(skip.view(-1, 1, 1), 0), dx.masked_fill(skip.view(-1, 1, 1), 0)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + sy - dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + sx - dx
    index = (rows * (w + 2 * sx) + cols).view(n, 1, h * w).expand(n, c, h * w)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy)).flatten(2)
    return padded.gather(2, index).view(n, c, h, w)


def cutout(x: torch.Tensor, generator: torch.Generator, skip: torch.Tensor | None) -> torch.Tensor:
    """One zeroed square of half the size per sample, centred at a random pixel (clipped at the border)."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = torch.randint(0, h, (n, 1), generator=generator, device=x.device) - size_y // 2
    left = torch.randint(0, w, (n, 1), generator=generator, device=x.device) - size_x // 2
    if skip is not None:
        top = top.masked_fill(skip.view(-1, 1), -2 * h)  # a square entirely outside the image
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y = (ys >= top) & (ys < top + size_y)  # [n, h]
    in_x = (xs >= left) & (xs < left + size_x)  # [n, w]
    return x * ~(in_y[:, None, :, None] & in_x[:, None, None, :])


def diff_augment(x: torch.Tensor, generator: torch.Generator, p: float = 1.0) -> torch.Tensor:
    """DiffAugment's colour, translation and cutout on images [B, C, H, W]; with p < 1 each of the five
    transforms acts on a sample with probability p (ADA's per-sample gating; a skipped transform gets its
    identity parameters, so the work and the random numbers drawn are the same for every p > 0)."""
    if p <= 0:
        return x
    skip: list[torch.Tensor | None] = [None] * 5
    if p < 1:
        skip = list(torch.rand(5, x.shape[0], generator=generator, device=x.device) >= p)
    x = colour(x, generator, skip[:3])
    x = translation(x, generator, skip[3])
    return cutout(x, generator, skip[4])


def resolve_policy(cfg: AugmentConfig, kind: str, items: int) -> tuple[str, str]:
    """(policy, announcement): "auto" becomes "ada" for image data of fewer than cfg.auto_below items."""
    if cfg.policy != "auto":
        return cfg.policy, ""
    if kind == "image" and items < cfg.auto_below:
        return "ada", (f"augment: ada (adaptive DiffAugment) because the data has only {items} images "
                       f"(< augment.auto_below {cfg.auto_below}); --augment none turns it off")
    return "none", ""


class Augmenter:
    """What the loop calls on every batch the critic scores; holds ADA's p and its running signal.

    state() / load_state() carry p and the not-yet-applied signal through checkpoints (trainer state)."""

    def __init__(self, cfg: AugmentConfig, policy: str, batch_size: int, generator: torch.Generator) -> None:
        self.cfg, self.policy, self.batch_size, self.generator = cfg, policy, batch_size, generator
        self.p = 1.0 if policy == "diffaug" else 0.0
        self.signal_sum, self.signal_count = 0.0, 0

    @property
    def active(self) -> bool:
        return self.policy != "none"

    def __call__(self, x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or not self.active or x.dim() != 4:  # 2-D points are not augmented
            return x
        return diff_augment(x, self.generator, self.p)

    def observe(self, signal: float) -> None:
        """One critic step's overfitting signal (the mean of sign(...) over its reals); ADA adjusts p every
        cfg.ada_interval steps by sign(r_t - target) * images / (ada_kimg * 1000), as StyleGAN2-ADA does."""
        if self.policy != "ada":
            return
        self.signal_sum += signal
        self.signal_count += 1
        if self.signal_count < self.cfg.ada_interval:
            return
        r_t = self.signal_sum / self.signal_count
        step = self.batch_size * self.signal_count / (self.cfg.ada_kimg * 1000)
        direction = (r_t > self.cfg.ada_target) - (r_t < self.cfg.ada_target)
        self.p = min(1.0, max(0.0, self.p + direction * step))
        self.signal_sum, self.signal_count = 0.0, 0

    def state(self) -> dict[str, Any]:
        return {"p": self.p, "signal_sum": self.signal_sum, "signal_count": self.signal_count}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if state:
            self.p, self.signal_sum, self.signal_count = (float(state["p"]), float(state["signal_sum"]),
                                                          int(state["signal_count"]))


def overfitting_signal(a: torch.Tensor, b: torch.Tensor, absolute_critic: bool) -> torch.Tensor:
    """ADA's r_t for one batch. A critic whose 0 means "undecided" (sgan, hinge): E[sign(C(x_r))] (Karras et al.,
    eq. 1). Critics that only score differences (the pair critic, relativistic and Wasserstein ones), whose
    outputs have no fixed zero: E[sign(a - b)], the share of (real, fake) pairs ordered correctly mapped to
    [-1, 1]; for the pair critic a - b = D(Δ) - D(-Δ) (docs/method-notes.md)."""
    return torch.sign(a).mean() if absolute_critic else torch.sign(a - b).mean()

"""A small digit classifier trained by the project: the feature space of the digit metrics.

Inception weights cannot be downloaded here, so digits are measured with a CNN trained on the built-in
set itself (mnist5k, or scikit-learn's digits). It sees 32x32 grayscale images in [-1, 1]: the raw
uint8 digits resized as the training data loader does (Pillow BICUBIC 28 -> 32, `_digits.to_resolution`).
Generated images of other sizes or channel counts are averaged over channels and resized bilinearly.
A held-out split (never trained on) is both its accuracy test and the real reference of the metrics.

Features = the 128-d global-average-pooled output of the last conv block, the input of the final
linear layer (the analogue of Inception's pool3). Weights are cached in the cache root (cache.py)
under classifiers/<set>-<hash>.pt, keyed by a hash of the
recipe and of the data, written atomically and read back with torch.load(weights_only=True).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tgan_deploy.cache import cache_root
from tgan_deploy.errors import DataError
from tgan_deploy.io import atomic_path
from tgan_deploy.metrics._digits import data_fingerprint, read_builtin_digits, resize, to_resolution

INPUT_SIZE = 32
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that determines the classifier's weights; its hash names the cache file."""

    dataset: str = "mnist5k"  # "mnist5k" or "digits"
    holdout: int = 1000  # digits kept out of training: the accuracy test and the metrics' real reference
    epochs: int = 10
    batch_size: int = 64
    lr: float = 4e-3
    max_shift: float = 2.0  # augmentation: random translation up to this many pixels ...
    max_rotation: float = 5.0  # ... rotation up to this many degrees ...
    max_scale: float = 0.05  # ... and scaling by 1 +- this
    widths: tuple[int, int, int] = (32, 64, 128)  # conv channels at 32, 16 and 8 px; the last is the feature size
    seed: int = 0
    version: int = 3  # bump when the code changes what the weights would be

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True) + data_fingerprint(self.dataset)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


RECIPES: dict[str, Recipe] = {
    "mnist5k": Recipe("mnist5k", holdout=1000),
    "digits": Recipe("digits", holdout=360),  # 20 % of 1,797
}


class DigitClassifier(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        c1, c2, c3 = widths

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, c1), nn.MaxPool2d(2),  # 16x16
            *block(c1, c2), nn.MaxPool2d(2),  # 8x8
            *block(c2, c3),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.feature_dim = c3
        self.head = nn.Linear(c3, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, 32, 32] in [-1, 1] -> [B, feature_dim] penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclasses.dataclass
class TrainedClassifier:
    model: DigitClassifier  # eval mode
    recipe: Recipe
    test_accuracy: float
    path: Path

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Images [B, C, R, R] in [-1, 1] (any C, R) -> (features [B, feature_dim], logits [B, 10]) as float64."""
        feats, logits = [], []
        for start in range(0, len(images), batch_size):
            x = to_classifier_input(images[start:start + batch_size])
            f = self.model.features(x)
            feats.append(f.double().numpy())
            logits.append(self.model.head(f).double().numpy())
        return np.concatenate(feats), np.concatenate(logits)


def to_classifier_input(images: torch.Tensor) -> torch.Tensor:
    """[B, C, R, R] in [-1, 1] -> [B, 1, 32, 32]: channel mean (RGB renderings of gray digits), resize, clamp."""
    x = images.float().cpu()
    if x.ndim != 4:
        raise DataError(f"expected images [B, C, H, W], got shape {list(x.shape)}")
    x = x.mean(dim=1, keepdim=True) if x.shape[1] != 1 else x
    return resize(x, INPUT_SIZE).clamp(-1.0, 1.0)


def split(recipe: Recipe) -> tuple[tuple[np.ndarray, torch.Tensor], tuple[np.ndarray, torch.Tensor]]:
    """((train images, labels), (held-out images, labels)): uint8 [N, H, W] at the digits' native size."""
    images, labels = read_builtin_digits(recipe.dataset)
    order = np.random.default_rng(recipe.seed).permutation(len(images))
    x, y = images[order], torch.from_numpy(labels[order])
    h = recipe.holdout
    return (x[h:], y[h:]), (x[:h], y[:h])


def _random_affine(x: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Augmentation: random rotation, scale and translation per image (background -1 stays -1)."""
    n, size = len(x), x.shape[-1]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * recipe.max_rotation * torch.pi / 180
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * recipe.max_scale
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * recipe.max_shift / size)  # pixels -> [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy on float images [N, C, R, R] in [-1, 1]."""
    model.eval()
    preds = torch.cat([model(to_classifier_input(images[i:i + 500])).argmax(1) for i in range(0, len(images), 500)])
    return float((preds == labels).float().mean())


def train_classifier(recipe: Recipe, progress: bool = False) -> tuple[DigitClassifier, float]:
    """Train on the recipe's training split; returns (model in eval mode, held-out accuracy)."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    (x_train, y_train), (x_test, y_test) = split(recipe)
    x_train_32 = to_resolution(x_train, INPUT_SIZE)
    model = DigitClassifier(recipe.widths)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps = recipe.epochs * -(-len(x_train_32) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=f"training the {recipe.dataset} classifier (once, cached)", unit="step",
                   leave=False)
    for _ in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x_train_32), generator=gen)
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            loss = F.cross_entropy(model(_random_affine(x_train_32[idx], recipe, gen)), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return model.eval(), accuracy(model, to_resolution(x_test, INPUT_SIZE), y_test)


def load_classifier(dataset: str = "mnist5k", cache: str | Path | None = None,
                    progress: bool = False) -> TrainedClassifier:
    """The cached classifier of a built-in digit set, training it first (under a minute on a CPU) if needed."""
    if dataset not in RECIPES:
        raise DataError(f"no classifier for {dataset!r}: choose from {', '.join(RECIPES)}")
    recipe = RECIPES[dataset]
    path = Path(cache or cache_root()) / "classifiers" / f"{dataset}-{recipe.key()}.pt"
    model = DigitClassifier(recipe.widths)
    if path.is_file():
        try:
            saved: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["state_dict"])
            return TrainedClassifier(model.eval(), recipe, float(saved["test_accuracy"]), path)
        except Exception:  # a damaged or stale cache entry is rebuilt, never trusted
            pass
    model, acc = train_classifier(recipe, progress=progress)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "test_accuracy": acc,
                    "recipe": dataclasses.asdict(recipe)}, tmp)
    return TrainedClassifier(model, recipe, acc, path)

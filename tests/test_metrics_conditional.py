"""Conditional accuracy (metrics/conditional.py) through tgan-eval's evaluate() on the 2-D mixtures."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tgan_deploy.config import TrainConfig
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.metrics.cli import format_table
from tgan_deploy.metrics.conditional import average_accuracy, per_class_accuracy
from tgan_deploy.metrics.evaluate import evaluate
from tgan_deploy.runtime.labels import seed_labels


class CentreGenerator(nn.Module):
    """Points near centre (label + shift) mod K: shift 0 obeys the label, others put every class elsewhere."""

    def __init__(self, centres: np.ndarray, shift: int) -> None:
        super().__init__()
        self.register_buffer("centres", torch.from_numpy(centres).float())
        self.shift = shift
        self.anchor = nn.Parameter(torch.zeros(()))  # evaluate() reads the device from a parameter

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.centres[(label + self.shift) % len(self.centres)] + 0.001 * z


def _config(num_classes: int) -> TrainConfig:
    cfg = TrainConfig()
    cfg.data.source, cfg.model.arch, cfg.model.latent_dim = "builtin:ring8", "mlp", 2
    cfg.model.num_classes = num_classes
    return cfg


def test_per_class_accuracy_and_labels() -> None:
    assert seed_labels(range(6, 11), 4).tolist() == [2, 3, 0, 1, 2]
    assert seed_labels(range(3), 0) is None
    per_class = per_class_accuracy(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert per_class[:3] == [1.0, 1.0, 0.5] and math.isnan(per_class[3])
    assert average_accuracy(per_class) == 2.5 / 3


def test_ring8_conditional_accuracy_follows_the_labels() -> None:
    centres = MIXTURES["ring8"].centres
    obeys = evaluate(CentreGenerator(centres, 0), _config(8), n=400, seed=3)
    assert obeys["metrics"]["conditional_accuracy"] == 1.0
    assert obeys["details"]["conditional_accuracy_per_class"] == [1.0] * 8
    assert obeys["metrics"]["modes"] == 8  # the unconditional metrics are still there
    swapped = evaluate(CentreGenerator(centres, 1), _config(8), n=400, seed=3)
    assert swapped["metrics"]["conditional_accuracy"] == 0.0 and swapped["metrics"]["modes"] == 8
    table = format_table(obeys)
    assert "conditional accuracy (class average) 100.0%" in table
    assert "conditional accuracy per class, %    100 100 100 100 100 100 100 100" in table

"""Conditional accuracy: does the class a conditional generator was asked for come out?

For a class-conditional model, the sample of seed s is drawn with label s mod num_classes (runtime.labels.seed_labels,
the export's parity check's rule too), so n samples cover every class nearly equally. A judge assigns each sample a
class: on digits the project's MNIST / digits classifier (classifier.py), on the 2-D mixtures the nearest
component (toy2d.py). Accuracy of class k = share of its samples judged k; the average is the unweighted
mean over classes (each class counts the same, whatever its sample count).
"""

from __future__ import annotations

import numpy as np


def per_class_accuracy(judged: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float]:
    """Share of the samples of each class that were judged to be that class (NaN for a class with none)."""
    hits = np.bincount(labels[judged == labels], minlength=num_classes)
    totals = np.bincount(labels, minlength=num_classes)
    return [float(h / t) if t else float("nan") for h, t in zip(hits, totals, strict=True)]


def average_accuracy(per_class: list[float]) -> float:
    values = [a for a in per_class if a == a]  # classes with samples
    return float(np.mean(values)) if values else float("nan")

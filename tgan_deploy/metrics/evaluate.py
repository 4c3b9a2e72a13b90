"""`evaluate(generator, cfg)`: the metrics that fit a run's data, from reproducible samples.

Samples come from seeds seed .. seed + n - 1 through tgan_deploy.runtime.latents, so `tgan-eval --seed S`
scores exactly the images `tgan-sample` makes for those seeds, and a trainer calling this every
run.eval_every steps scores the same latents each time (as PacGAN's fixed evaluation noise).

The data decides the metrics (cfg.data.source):
- builtin:ring8 / builtin:grid25: PacGAN's modes / HQ % / reverse KL (toy2d.py);
- builtin:mnist5k / builtin:digits: a classifier trained on that set (classifier.py) gives the classifier
  Fréchet distance (CFD), KID and precision/recall in its feature space against its held-out split, class
  coverage and the KL of the predicted-class histogram to uniform;
- anything else: no metric here yet (an error saying so); see docs/evaluation.md for Inception FID/KID with
  torch-fidelity on a folder written by tgan-sample.
Class-conditional models (model.num_classes > 0) draw seed s with label s mod num_classes and add
`conditional_accuracy` (conditional.py): the share of class-k samples the classifier calls k, or, on the
mixtures, that land nearest component k; per class in the details.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from tgan_deploy.config import TrainConfig
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.errors import TganError
from tgan_deploy.metrics._digits import to_resolution
from tgan_deploy.metrics.classifier import TrainedClassifier, load_classifier, split
from tgan_deploy.metrics.conditional import average_accuracy, per_class_accuracy, sample_labels
from tgan_deploy.metrics.defaults import DEFAULTS
from tgan_deploy.metrics.frechet import frechet_distance_features
from tgan_deploy.metrics.histogram import covered, kl_to_uniform
from tgan_deploy.metrics.kid import kernel_distance
from tgan_deploy.metrics.prc import precision_recall
from tgan_deploy.metrics.toy2d import mode_metrics, nearest_centre
from tgan_deploy.runtime.latents import latents

BUILTIN = "builtin:"


def data_kind(cfg: TrainConfig) -> str:
    """"toy2d", "digits" or "unsupported", from cfg.data.source."""
    name = cfg.data.source.removeprefix(BUILTIN) if cfg.data.source.startswith(BUILTIN) else None
    if name in MIXTURES:
        return "toy2d"
    if name in ("mnist5k", "digits"):
        return "digits"
    return "unsupported"


@torch.no_grad()
def generate(generator: nn.Module, latent_dim: int, n: int, seed: int,
             batch_size: int = DEFAULTS["batch_size"], num_classes: int = 0) -> torch.Tensor:
    """G(z) for the latents of seeds seed .. seed + n - 1, in eval mode, on the generator's device, as CPU float32;
    a conditional generator (num_classes > 0) gets the labels `conditional.sample_labels`."""
    if n < 1 or seed < 0:
        raise TganError(f"need n >= 1 samples and a seed >= 0, got n={n}, seed={seed}")
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        z = torch.from_numpy(latents(range(seed, seed + n), latent_dim))
        y = torch.from_numpy(sample_labels(seed, n, num_classes)) if num_classes else None
        out = [generator(*_inputs(z, y, slice(i, i + batch_size), device)).float().cpu()
               for i in range(0, n, batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(out)


def _inputs(z: torch.Tensor, y: torch.Tensor | None, rows: slice, device: torch.device) -> list[torch.Tensor]:
    return [z[rows].to(device)] + ([] if y is None else [y[rows].to(device)])


def evaluate(generator: nn.Module, cfg: TrainConfig, n: int = DEFAULTS["n"], seed: int = DEFAULTS["seed"],
             classifier: TrainedClassifier | None = None, progress: bool = False) -> dict[str, Any]:
    """Score `generator` (trained per `cfg`) on n samples; see the module docstring.

    Returns {"kind", "data", "n", "seed", "metrics": {name: float}, "details": {...}, "feature_space": str}.
    `metrics` holds only scalars (a trainer can log them as they are); NaN marks an undefined value.
    Pass `classifier` to reuse one across calls (it is cached on disk either way).
    """
    kind = data_kind(cfg)
    if kind == "unsupported":
        raise TganError(f"tgan-eval has no metric for data {cfg.data.source!r} yet: it scores builtin:ring8, "
                        "grid25, mnist5k and digits; for other images write samples with tgan-sample and run "
                        "torch-fidelity (docs/evaluation.md)")
    num_classes = cfg.model.num_classes
    samples = generate(generator, cfg.model.latent_dim, n, seed, num_classes=num_classes)
    result: dict[str, Any] = {"kind": kind, "data": cfg.data.source, "n": n, "seed": seed}
    if kind == "toy2d":
        mixture = MIXTURES[cfg.data.source.removeprefix(BUILTIN)]
        m = mode_metrics(samples.numpy(), mixture)
        result["metrics"] = {"modes": m.modes, "hq_percent": m.hq_percent, "reverse_kl": m.reverse_kl}
        result["details"] = {"total_modes": m.total_modes, "per_mode_counts": m.per_mode_counts,
                             "hq_threshold_std": DEFAULTS["hq_threshold_std"]}
        result["feature_space"] = "raw 2-D points (PacGAN protocol)"
        if num_classes:
            _add_conditional(result, nearest_centre(samples.numpy(), mixture), seed, num_classes)
        return result
    return result | _digit_metrics(samples, cfg, classifier, progress, seed)


def _add_conditional(result: dict[str, Any], judged: np.ndarray, seed: int, num_classes: int) -> None:
    """conditional_accuracy (class average) into the metrics, per class into the details."""
    per_class = per_class_accuracy(judged, sample_labels(seed, len(judged), num_classes), num_classes)
    result["metrics"]["conditional_accuracy"] = average_accuracy(per_class)
    result["details"]["conditional_accuracy_per_class"] = per_class


def real_reference(classifier: TrainedClassifier, resolution: int) -> torch.Tensor:
    """The classifier's held-out digits as the training data loader shows them at `resolution` ([N, 1, R, R])."""
    _, (x_test, _) = split(classifier.recipe)
    return to_resolution(x_test, resolution)


def _digit_metrics(samples: torch.Tensor, cfg: TrainConfig, classifier: TrainedClassifier | None,
                   progress: bool, seed: int) -> dict[str, Any]:
    dataset = cfg.data.source.removeprefix(BUILTIN)
    clf = classifier if classifier is not None else load_classifier(dataset, progress=progress)
    if clf.recipe.dataset != dataset:
        raise TganError(f"the classifier was trained on {clf.recipe.dataset}, the run on {dataset}")
    nonfinite = int((~torch.isfinite(samples.flatten(1))).any(1).sum())
    real_f, _ = clf.features_and_logits(real_reference(clf, cfg.model.resolution))
    classes = clf.model.head.out_features
    metrics: dict[str, float]
    if nonfinite:
        # A diverged generator: report it instead of failing the trainer's evaluation.
        metrics = dict.fromkeys(("cfd", "kid", "kid_std", "precision", "recall", "class_coverage",
                                 "class_kl"), math.nan)
        counts = np.zeros(classes, dtype=np.int64)
        predicted = np.full(len(samples), -1)
    else:
        fake_f, fake_logits = clf.features_and_logits(samples)
        predicted = np.asarray(fake_logits.argmax(1))
        counts = np.bincount(predicted, minlength=classes)
        kid = kernel_distance(real_f, fake_f)
        prc = precision_recall(real_f, fake_f)
        metrics = {
            "cfd": frechet_distance_features(real_f, fake_f),
            "kid": kid.mean, "kid_std": kid.std,
            "precision": prc.precision, "recall": prc.recall,
            "class_coverage": covered(counts, DEFAULTS["coverage_min_share"] * len(samples) / classes),
            "class_kl": kl_to_uniform(counts),
        }
    result: dict[str, Any] = {
        "metrics": metrics,
        "details": {"class_counts": [int(c) for c in counts], "nonfinite_samples": nonfinite,
                    "total_classes": classes, "real_reference": f"{len(real_f)} held-out {dataset} digits",
                    "classifier": {"path": str(clf.path), "test_accuracy": clf.test_accuracy},
                    "coverage_min_share": DEFAULTS["coverage_min_share"]},
        "feature_space": f"{clf.model.feature_dim}-d penultimate features of the project's {dataset} classifier "
                         "(comparable within this project only)",
    }
    if cfg.model.num_classes:
        _add_conditional(result, predicted, seed, cfg.model.num_classes)
    return result

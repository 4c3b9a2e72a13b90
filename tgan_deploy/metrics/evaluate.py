"""`evaluate(generator, cfg)`: the metrics that fit a run's data, from reproducible samples.

Samples come from seeds seed .. seed + n - 1 through tgan_deploy.runtime.latents, so `tgan-eval --seed S`
scores exactly the images `tgan-sample` makes for those seeds, and a trainer calling this every
run.eval_every steps scores the same latents each time (as PacGAN's fixed evaluation noise).

The data decides the metrics (cfg.data.source):
- builtin:ring8 / builtin:grid25: PacGAN's modes / HQ % / reverse KL (toy2d.py), and the Fréchet distance of
  the points themselves to as many points of the mixture;
- builtin:mnist5k / builtin:digits: a classifier trained on that set (classifier.py) gives the classifier
  Fréchet distance (CFD), KID and precision/recall in its feature space against its held-out split, class
  coverage and the KL of the predicted-class histogram to uniform;
- other images, given a feature detector (metrics/features.py: Inception's TorchScript file, or any with its
  call signature): FD and KID in its feature space against the training images; without one, an error
  that says how to get it.
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
from tgan_deploy.metrics.conditional import average_accuracy, per_class_accuracy
from tgan_deploy.metrics.defaults import DEFAULTS
from tgan_deploy.metrics.features import (
    DETECTOR_FILE,
    REAL_MAX,
    Detector,
    default_detector_path,
    real_features,
)
from tgan_deploy.metrics.frechet import frechet_distance_features
from tgan_deploy.metrics.histogram import covered, kl_to_uniform
from tgan_deploy.metrics.kid import kernel_distance
from tgan_deploy.metrics.prc import precision_recall
from tgan_deploy.metrics.toy2d import mode_metrics, nearest_centre
from tgan_deploy.runtime.images import to_uint8
from tgan_deploy.runtime.labels import seed_labels
from tgan_deploy.runtime.latents import latents, seed_range

BUILTIN = "builtin:"


# The metric that ranks checkpoints (lower is better) per kind: Fréchet distance in the kind's space (on the
# 2-D mixtures the points themselves: reverse KL is undefined while no sample is near a mode, as early on).
PRIMARY_METRIC = {"toy2d": "fd", "digits": "cfd", "features": "fd"}
TOY_REFERENCE_SEED = 0  # the real points the 2-D FD compares with: mixture.sample(n, default_rng(0))


def data_kind(cfg: TrainConfig, detector: Detector | None = None) -> str:
    """"toy2d", "digits", "features" (a detector's space) or "unsupported", from cfg.data.source."""
    if detector is not None:
        return "features"
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
    a conditional generator (num_classes > 0) gets the labels `runtime.labels.seed_labels`."""
    seeds = seed_range(seed, n)
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        z = torch.from_numpy(latents(seeds, latent_dim))
        labels = seed_labels(seeds, num_classes)
        y = None if labels is None else torch.from_numpy(labels)
        out = [generator(*_inputs(z, y, slice(i, i + batch_size), device)).float().cpu()
               for i in range(0, n, batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(out)


def _inputs(z: torch.Tensor, y: torch.Tensor | None, rows: slice, device: torch.device) -> list[torch.Tensor]:
    return [z[rows].to(device)] + ([] if y is None else [y[rows].to(device)])


def evaluate(generator: nn.Module, cfg: TrainConfig, n: int = DEFAULTS["n"], seed: int = DEFAULTS["seed"],
             classifier: TrainedClassifier | None = None, progress: bool = False,
             detector: Detector | None = None, real: np.ndarray | None = None) -> dict[str, Any]:
    """Score `generator` (trained per `cfg`) on n samples; see the module docstring.

    Returns {"kind", "data", "n", "seed", "metrics": {name: float}, "details": {...}, "feature_space": str,
    "primary": the name of the metric that ranks checkpoints (lower is better)}.
    `metrics` holds only scalars (a trainer can log them as they are); NaN marks an undefined value.
    Pass `classifier` to reuse one across calls (it is cached on disk either way). With a `detector`
    (metrics/features.py) images are scored in its feature space against `real` (uint8 [N, C, R, R], the
    training data; loaded from cfg.data.source when not given).
    """
    kind = data_kind(cfg, detector)
    if kind == "unsupported":
        raise TganError(f"no metric for data {cfg.data.source!r} without a feature detector: builtin:ring8, "
                        "grid25, mnist5k and digits have their own; for other images put Inception's "
                        f"{DETECTOR_FILE} at {default_detector_path()} or pass --features PATH (docs/evaluation.md)")
    num_classes = cfg.model.num_classes
    samples = generate(generator, cfg.model.latent_dim, n, seed, num_classes=num_classes)
    result: dict[str, Any] = {"kind": kind, "data": cfg.data.source, "n": n, "seed": seed,
                              "primary": PRIMARY_METRIC[kind]}
    if kind == "features":
        assert detector is not None
        return result | _detector_metrics(samples, cfg, detector, real)
    if kind == "toy2d":
        mixture = MIXTURES[cfg.data.source.removeprefix(BUILTIN)]
        m = mode_metrics(samples.numpy(), mixture)
        real = mixture.sample(n, np.random.default_rng(TOY_REFERENCE_SEED))
        finite = bool(np.isfinite(samples.numpy()).all())
        result["metrics"] = {"modes": m.modes, "hq_percent": m.hq_percent, "reverse_kl": m.reverse_kl,
                             "fd": frechet_distance_features(real, samples.numpy()) if finite else math.nan}
        result["details"] = {"total_modes": m.total_modes, "per_mode_counts": m.per_mode_counts,
                             "hq_threshold_std": DEFAULTS["hq_threshold_std"]}
        result["feature_space"] = "raw 2-D points (PacGAN protocol)"
        if num_classes:
            _add_conditional(result, nearest_centre(samples.numpy(), mixture), seed, num_classes)
        return result
    return result | _digit_metrics(samples, cfg, classifier, progress, seed)


def _add_conditional(result: dict[str, Any], judged: np.ndarray, seed: int, num_classes: int) -> None:
    """conditional_accuracy (class average) into the metrics, per class into the details."""
    labels = seed_labels(range(seed, seed + len(judged)), num_classes)
    assert labels is not None  # called for conditional models only
    per_class = per_class_accuracy(judged, labels, num_classes)
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


def _detector_metrics(samples: torch.Tensor, cfg: TrainConfig, detector: Detector,
                      real: np.ndarray | None) -> dict[str, Any]:
    """FD and KID of uint8 samples against the real images, both in the detector's feature space."""
    if real is None:
        from tgan_deploy.data import load_dataset

        real = load_dataset(cfg.data.source, cfg.model, cfg.data).subset(REAL_MAX).array
    real_f = real_features(detector, np.asarray(real))
    nonfinite = int((~torch.isfinite(samples.flatten(1))).any(1).sum())
    if nonfinite:
        metrics = dict.fromkeys(("fd", "kid", "kid_std"), math.nan)
    else:
        fake_f = detector.features(to_uint8(samples.numpy()))  # what tgan-sample saves
        kid = kernel_distance(real_f, fake_f)
        metrics = {"fd": frechet_distance_features(real_f, fake_f), "kid": kid.mean, "kid_std": kid.std}
    return {"metrics": metrics,
            "details": {"nonfinite_samples": nonfinite, "real_reference": f"{len(real_f)} training images",
                        "detector": {"path": str(detector.path), "sha256": detector.sha256}},
            "feature_space": f"{detector.feature_dim}-d features of {detector.name}"}

"""Evaluation during training (run.eval_every): tgan-eval's own `evaluate()` on the sampling generator.

`plan()` decides at start, before the run directory is touched, which feature space the run is scored in:
- run.eval_features PATH: that TorchScript detector (an unusable file is a one-line error here);
- builtin:ring8 / grid25: PacGAN's mode metrics; builtin:mnist5k / digits: the project's digit classifier;
- other images: the Inception detector in the cache (metrics/features.py), if it is there; otherwise one
  line says how to get it and the run trains without evaluation.
Each evaluation scores the same seeded latents (seeds 0 .. run.eval_samples - 1). The metric that ranks
checkpoints (`evaluate`'s "primary", lower is better) decides best.pt: the loop saves the full training state
there whenever an evaluation beats every earlier one (train/state.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import TganError
from tgan_deploy.metrics.classifier import TrainedClassifier
from tgan_deploy.metrics.features import DETECTOR_FILE, REAL_MAX, Detector, default_detector_path, find_detector


@dataclasses.dataclass
class Evaluator:
    cfg: TrainConfig
    detector: Detector | None = None
    classifier: TrainedClassifier | None = None
    real: np.ndarray | None = None  # uint8 real images for a detector's metrics

    def __call__(self, generator: nn.Module, step: int) -> dict[str, Any]:
        """{"step", "metric", "value", "feature_space", "metrics": {name: float}} of one evaluation."""
        from tgan_deploy.metrics.evaluate import evaluate

        result = evaluate(generator, self.cfg, n=self.cfg.run.eval_samples, classifier=self.classifier,
                          detector=self.detector, real=self.real)
        metrics = {name: float(value) for name, value in result["metrics"].items()}
        return {"step": step, "metric": result["primary"], "value": metrics[result["primary"]],
                "feature_space": result["feature_space"], "metrics": metrics}


def evaluates(cfg: TrainConfig) -> bool:
    """Whether the run evaluates at all: run.eval_every > 0 and the run is at least that long (a short trial run
    is not held up by an evaluation it did not ask for, nor by loading or training what scores it)."""
    return 0 < cfg.run.eval_every <= cfg.run.steps


def plan(cfg: TrainConfig, dataset: Any, say: Callable[[str], None]) -> Evaluator | None:
    """The run's evaluator, or None (no evaluation is due in this run, or image data without a detector: said in
    one line). The built-in scorers are not loaded, nor the digit classifier trained, for a run that never
    evaluates."""
    from tgan_deploy.metrics.evaluate import data_kind

    if cfg.run.eval_every == 0 or not (evaluates(cfg) or cfg.run.eval_features):
        return None  # a file the user named is still checked below: bad input is refused, used or not
    explicit = cfg.run.eval_features
    kind = data_kind(cfg)
    if not explicit and kind == "digits":
        from tgan_deploy.metrics.classifier import load_classifier

        return Evaluator(cfg, classifier=load_classifier(cfg.data.source.removeprefix("builtin:"), progress=True))
    if not explicit and kind == "toy2d":
        return Evaluator(cfg)
    if explicit and dataset.kind != "image":
        raise TganError(f"--eval-features scores images, and {cfg.data.source} is 2-D points (scored by "
                        "PacGAN's mode metrics without it): drop --eval-features")
    detector = find_detector(explicit)  # raises on an unusable explicit file
    if detector is None:
        if dataset.kind == "image":
            say(f"no evaluation during training: image data is scored with Inception's {DETECTOR_FILE}, which "
                f"is not at {default_detector_path()}; put it there or pass --eval-features PATH "
                "(docs/evaluation.md), or --set run.eval_every=0 to silence this")
        return None
    return Evaluator(cfg, detector=detector, real=np.asarray(dataset.subset(REAL_MAX).array))


def improves(evaluation: dict[str, Any], best: float) -> bool:
    return math.isfinite(evaluation["value"]) and evaluation["value"] < best

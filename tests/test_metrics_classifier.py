"""The project's digit classifier and the metrics in its feature space (trained once per session).

Training the classifier takes about a minute on 2 idle cores (much longer on a busy machine), so every test
that needs it is marked slow. It is trained into a fresh temporary cache, unless TGAN_DEPLOY_TEST_CACHE names a
cache folder to reuse (for quick local reruns).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _subprocess import repo_env

from tgan_deploy.checkpoint import save_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.metrics._digits import read_builtin_digits, to_resolution
from tgan_deploy.metrics.classifier import TrainedClassifier, load_classifier, split
from tgan_deploy.metrics.evaluate import evaluate, real_reference
from tgan_deploy.metrics.frechet import frechet_distance_features
from tgan_deploy.metrics.histogram import kl_to_uniform
from tgan_deploy.metrics.kid import kernel_distance
from tgan_deploy.models import build_generator
from tgan_deploy.run_layout import step_file_name

MIN_ACCURACY = 0.97


@pytest.fixture(scope="session")
def mnist_classifier(cache: Path) -> TrainedClassifier:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_classifier("mnist5k", cache=cache)


def test_mnist5k_reader_has_500_digits_per_class_with_the_label_in_the_last_column() -> None:
    images, labels = read_builtin_digits("mnist5k")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert np.bincount(labels).tolist() == [500] * 10


@pytest.mark.slow
def test_classifier_held_out_accuracy(mnist_classifier: TrainedClassifier) -> None:
    assert mnist_classifier.test_accuracy >= MIN_ACCURACY
    # the number is recomputable from the cached weights
    _, (x_test, y_test) = split(mnist_classifier.recipe)
    _, logits = mnist_classifier.features_and_logits(to_resolution(x_test, 32))
    assert (logits.argmax(1) == y_test.numpy()).mean() == pytest.approx(mnist_classifier.test_accuracy, abs=1e-6)


@pytest.mark.slow
def test_classifier_cache_is_reused_and_a_damaged_file_is_rebuilt(mnist_classifier: TrainedClassifier,
                                                                   cache: Path) -> None:
    again = load_classifier("mnist5k", cache=cache)
    assert again.path == mnist_classifier.path and again.test_accuracy == mnist_classifier.test_accuracy
    for a, b in zip(again.model.state_dict().values(), mnist_classifier.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert mnist_classifier.path.parent.parent == cache and len(mnist_classifier.path.stem.split("-")[1]) == 16


@pytest.mark.slow
def test_real_held_out_digits_cover_all_classes_near_uniformly(mnist_classifier: TrainedClassifier) -> None:
    _, logits = mnist_classifier.features_and_logits(real_reference(mnist_classifier, 32))
    counts = np.bincount(logits.argmax(1), minlength=10)
    assert (counts >= 0.5 * len(logits) / 10).all()
    assert kl_to_uniform(counts) < 0.02


@pytest.mark.slow
def test_feature_distances_separate_real_halves_from_corrupted_digits(mnist_classifier: TrainedClassifier) -> None:
    real = real_reference(mnist_classifier, 32)
    feats, _ = mnist_classifier.features_and_logits(real)
    noisy, _ = mnist_classifier.features_and_logits((real + 0.5 * torch.randn_like(real)).clamp(-1, 1))
    half = len(feats) // 2
    cfd_real = frechet_distance_features(feats[:half], feats[half:])
    cfd_noisy = frechet_distance_features(feats[:half], noisy[half:])
    assert cfd_noisy > 5 * cfd_real
    assert kernel_distance(feats[:half], noisy[half:], subsets=10).mean > 10 * abs(
        kernel_distance(feats[:half], feats[half:], subsets=10).mean)


@pytest.mark.slow
def test_evaluate_scores_real_training_digits_well_and_an_untrained_generator_badly(
        mnist_classifier: TrainedClassifier) -> None:
    (x_train, _), _ = split(mnist_classifier.recipe)
    digits = to_resolution(x_train, 64).repeat(1, 3, 1, 1)  # as an RGB 64 px run sees them

    class Replay(torch.nn.Module):
        """A 'generator' that returns the next real training digits (the best a GAN can do)."""

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))
            self.next = 0

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            out = digits[self.next:self.next + len(z)]
            self.next += len(z)
            return out

    cfg = TrainConfig.from_dict({"model": {"resolution": 64, "channels": 3, "base_channels": 8},
                                 "data": {"source": "builtin:mnist5k"}})
    good = evaluate(Replay(), cfg, n=2000, classifier=mnist_classifier)
    torch.manual_seed(0)
    bad = evaluate(build_generator(cfg.model), cfg, n=500, classifier=mnist_classifier)
    g, b = good["metrics"], bad["metrics"]
    assert good["kind"] == "digits" and g["class_coverage"] == 10 and g["class_kl"] < 0.02
    assert g["precision"] > 0.6 and g["recall"] > 0.6
    assert b["cfd"] > 5 * g["cfd"] and b["kid"] > 5 * g["kid"]
    assert b["class_kl"] > g["class_kl"]


@pytest.mark.slow
def test_cli_on_a_digit_checkpoint(mnist_classifier: TrainedClassifier, cache: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({"model": {"resolution": 32, "channels": 1, "base_channels": 8, "latent_dim": 16},
                                 "data": {"source": "builtin:mnist5k"}})
    ckpt = tmp_path / "run" / "checkpoints" / step_file_name(3)
    g = build_generator(cfg.model)
    save_checkpoint(ckpt, {"config": cfg.to_dict(), "step": 3, "generator": g.state_dict(),
                           "generator_ema": g.state_dict()})
    env = repo_env(TGAN_DEPLOY_CACHE=str(cache))
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "tgan_deploy", "eval", str(ckpt), "--n", "200", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "classifier Fréchet distance (CFD)" in proc.stdout and "classes covered" in proc.stdout
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"cfd", "kid", "kid_std", "precision", "recall", "class_coverage", "class_kl"}
    assert sum(result["details"]["class_counts"]) == 200
    assert result["details"]["classifier"]["path"] == str(mnist_classifier.path)

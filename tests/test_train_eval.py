"""Evaluation during training (issue 18): metrics at the asked steps, best.pt = the argmin, tgan-export RUN takes
it, feature detectors through the real TorchScript loading path, and one-line refusals with nothing written."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from train_support import IMAGES, TOY, env, error_line, metrics, run_train, train_cmd

from tgan_deploy.checkpoint import load_checkpoint

CLI = [sys.executable, "-m", "tgan_deploy"]
EVAL = ["--eval-every", "4", "--set", "run.eval_samples=300", "--set", "run.log_every=4"]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    run_train(*TOY, *EVAL, "--steps", "16", "--out", str(out), "--set", "run.checkpoint_every=8")
    return out


def test_metrics_at_the_asked_steps_and_best_is_their_argmin(evaluated_run: Path) -> None:
    evals = [r for r in metrics(evaluated_run) if "eval/fd" in r]
    assert [r["step"] for r in evals] == [4, 8, 12, 16]
    best = load_checkpoint(evaluated_run / "checkpoints" / "best.pt")
    argmin = min(evals, key=lambda r: r["eval/fd"])
    assert best["step"] == argmin["step"] and best["evaluation"]["value"] == argmin["eval/fd"]
    assert best["trainer"]["best_step"] == argmin["step"]
    assert (evaluated_run / "eval.png").is_file()


def test_a_rollback_never_replaces_best_pt_with_a_worse_model(evaluated_run: Path, tmp_path: Path) -> None:
    """best.pt newer than the checkpoint a divergence rolls back to: the later, worse evaluations leave it alone."""
    run = shutil.copytree(evaluated_run, tmp_path / "run")
    best_path = run / "checkpoints" / "best.pt"
    best = load_checkpoint(best_path)
    assert best["step"] == 16  # the toy run improves at every evaluation (fd 14.4, 14.2, 14.0, 13.7)
    # What a kill between writing best.pt and step-16.pt leaves: the newest step file is 8, older than best.pt.
    (run / "checkpoints" / "step-00000016.pt").unlink()
    older = load_checkpoint(run / "checkpoints" / "step-00000008.pt")["trainer"]["best_score"]
    before = hashlib.sha256(best_path.read_bytes()).hexdigest()
    # Resumed at 8 with learning rates that overflow at once: a divergence at 9 rolls back to step 8, and the
    # rollback's factor brings them back to the preset's 1e-4 (1e30 x 1e-34), so iterations 9-12 are replayed.
    proc = run_train("--out", str(run), "--resume", "--steps", "12", "--set", "optim.lr_g=1e30",
                     "--set", "optim.lr_d=1e30", "--set", "run.rollback_lr_factor=1e-34")
    assert [r["event"] for r in metrics(run) if "event" in r] == ["diverged", "rollback"], proc.stderr
    replayed = [r["eval/fd"] for r in metrics(run) if "eval/fd" in r and r["step"] == 12]
    # The case that matters: an evaluation worse than best.pt's but better than the best score in the state rolled
    # back to (trusting that score, as a rollback used to, replaced best.pt with the step-12 model).
    assert len(replayed) == 1 and best["evaluation"]["value"] < replayed[0] < older, (replayed, older)
    assert hashlib.sha256(best_path.read_bytes()).hexdigest() == before
    assert load_checkpoint(run / "checkpoints" / "step-00000012.pt")["trainer"]["best_step"] == 16


def test_export_takes_the_best_checkpoint_and_says_so(evaluated_run: Path, tmp_path: Path) -> None:
    best = load_checkpoint(evaluated_run / "checkpoints" / "best.pt")
    proc = subprocess.run([*CLI, "export", str(evaluated_run), "--out", str(tmp_path / "best")], env=env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "best.pt" in proc.stderr and f"at step {best['step']}" in proc.stderr
    meta = json.loads((tmp_path / "best" / "model.json").read_text())
    assert meta["source_step"] == best["step"]
    assert meta["source_evaluation"]["metric"] == "fd" and meta["source_evaluation"]["step"] == best["step"]
    last = subprocess.run([*CLI, "export", str(evaluated_run), "--out", str(tmp_path / "last"), "--checkpoint", "last"],
                          env=env(), capture_output=True, text=True)
    assert last.returncode == 0, last.stderr
    assert json.loads((tmp_path / "last" / "model.json").read_text())["source_step"] == 16
    named = subprocess.run([*CLI, "export", str(evaluated_run), "--out", str(tmp_path / "named"),
                            "--checkpoint", "step-00000008.pt"], env=env(), capture_output=True, text=True)
    assert named.returncode == 0, named.stderr
    assert json.loads((tmp_path / "named" / "model.json").read_text())["source_step"] == 8


def test_a_run_that_never_evaluates_loads_no_evaluator(tmp_path: Path) -> None:
    """Digits are scored by the project's classifier, trained (about 40 s) into the cache on first use: a run
    shorter than run.eval_every never evaluates, so it neither loads nor trains it."""
    cache = tmp_path / "cache"
    proc = subprocess.run(train_cmd(*IMAGES, "--steps", "1", "--eval-every", "2", "--out", str(tmp_path / "run")),
                          env=env() | {"TGAN_DEPLOY_CACHE": str(cache)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (cache / "classifiers").exists() and "classifier" not in proc.stderr
    assert not [r for r in metrics(tmp_path / "run") if any(k.startswith("eval/") for k in r)]


# -- feature detectors ---------------------------------------------------------------------------------

class StandIn(torch.nn.Module):
    """A tiny detector with the Inception file's call signature: 2x2 average pools of the RGB channels."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 2)
        return pooled.flatten(1)


class NoFeatures(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean()


@pytest.fixture(scope="module")
def image_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("npz") / "blobs.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, size=(64, 16, 16, 3), dtype=np.uint8))
    return path


def _script(module: torch.nn.Module, path: Path) -> Path:
    """A TorchScript file, the format of StyleGAN's Inception detector (torch.jit.script warns that it is
    deprecated in favour of torch.export; the files users have are TorchScript)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


IMAGE_RUN = ["--resolution", "32", "--set", "model.base_channels=4", "--set", "model.head_hidden=8",
             "--set", "model.latent_dim=8", "--batch-size", "8", "--set", "run.threads=1",
             "--set", "run.sample_grid=2", "--augment", "none"]


def test_a_stand_in_detector_scores_training_and_tgan_eval_alike(image_npz: Path, tmp_path: Path) -> None:
    detector = _script(StandIn(), tmp_path / "standin.pt")
    out = tmp_path / "run"
    cache = env() | {"TGAN_DEPLOY_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(train_cmd("--data", str(image_npz), *IMAGE_RUN, "--steps", "4", "--eval-every", "2",
                                    "--set", "run.eval_samples=40", "--eval-features", str(detector),
                                    "--out", str(out)), env=cache, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    evals = [r for r in metrics(out) if "eval/fd" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(r["eval/fd"] > 0 for r in evals)
    assert list((tmp_path / "cache" / "eval-reference").glob("*.npy"))  # real features cached once
    scored = subprocess.run([*CLI, "eval", str(out), "--checkpoint", "last", "--n", "40", "--features", str(detector),
                             "--json", str(tmp_path / "eval.json")], env=cache, capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["metrics"]["fd"] == pytest.approx(evals[-1]["eval/fd"], rel=1e-9)  # one implementation


@pytest.mark.parametrize("problem", ["missing", "not-torchscript", "wrong-signature"])
def test_an_unusable_eval_features_file_is_one_line_and_nothing_is_written(image_npz: Path, tmp_path: Path,
                                                                           problem: str) -> None:
    path = tmp_path / "detector.pt"
    if problem == "not-torchscript":
        path.write_bytes(b"not a zip archive")
    elif problem == "wrong-signature":
        _script(NoFeatures(), path)
    out = tmp_path / "run"
    proc = run_train("--data", str(image_npz), *IMAGE_RUN, "--steps", "2", "--eval-features", str(path),
                     "--out", str(out), check=False)
    assert proc.returncode == 2
    assert "feature detector" in error_line(proc)
    assert not out.exists() or [p.name for p in out.iterdir()] == [".lock"]  # the run lock only


def test_image_data_without_a_detector_says_how_to_get_one_and_trains(image_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd("--data", str(image_npz), *IMAGE_RUN, "--steps", "2", "--eval-every", "1",
                                    "--out", str(out)),
                          env=env() | {"TGAN_DEPLOY_CACHE": str(tmp_path / "empty")}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("no evaluation during training")]
    assert len(lines) == 1 and "inception-2015-12-05.pt" in lines[0] and "--eval-features" in lines[0]
    assert not [r for r in metrics(out) if any(k.startswith("eval/") for k in r)]

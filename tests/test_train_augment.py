"""Augmentation (train/augment.py): DiffAugment's transforms against their textbook forms, ADA's controller,
and ADA's p through a real run killed with kill -9 and resumed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import torch
from train_support import IMAGES, env, losses, metrics, run_train, train_cmd, wait_for_records

from tgan_deploy.config import AugmentConfig
from tgan_deploy.train import augment as A


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_is_brightness_then_saturation_then_contrast(channels: int) -> None:
    """The one-expression colour transform equals DiffAugment's three separate steps with the same draws."""
    x = torch.randn(6, channels, 8, 8, dtype=torch.float64)
    out = A.colour(x, _gen(), [None, None, None])
    g = _gen()
    u, s, c = (torch.rand(6, 1, 1, 1, generator=g, dtype=torch.float64) for _ in range(3))
    y = x + (u - 0.5)  # brightness
    mean_c = y.mean(dim=1, keepdim=True)
    y = (y - mean_c) * (s * 2) + mean_c  # saturation
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * (c + 0.5) + mean  # contrast
    torch.testing.assert_close(out, y)


def test_translation_moves_an_impulse_and_cutout_zeroes_a_square() -> None:
    x = torch.zeros(32, 1, 32, 32)
    x[:, :, 16, 16] = 1.0
    moved = A.translation(x, _gen(), None)
    where = [(int(i // 32), int(i % 32)) for i in moved.flatten(1).argmax(1)]
    assert all(moved[i].sum() == 1 for i in range(32))  # an interior pixel shifted by <= 4 stays inside
    assert all(abs(r - 16) <= 4 and abs(c - 16) <= 4 for r, c in where)
    assert len(set(where)) > 5  # shifts differ per sample
    cut = A.cutout(torch.ones(32, 1, 32, 32), _gen(), None)
    zeroed = (cut == 0).flatten(1).sum(1)
    assert zeroed.max() == 16 * 16 and zeroed.min() > 0  # a 16x16 square, clipped at the border


def test_diff_augment_is_seeded_differentiable_and_p_zero_is_the_identity() -> None:
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    a, b = A.diff_augment(x, _gen(1)), A.diff_augment(x, _gen(1))
    assert torch.equal(a, b) and not torch.equal(a, x)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert A.diff_augment(x, _gen(), p=0.0) is x
    # Under ADA's gating a sample whose five transforms were all skipped passes through unchanged.
    gated = A.diff_augment(x.detach(), _gen(2), p=0.2)
    unchanged = [(gated[i] == x[i]).all() for i in range(8)]
    assert 0 < sum(unchanged) < 8


def test_ada_controller_moves_p_towards_the_target_and_clamps() -> None:
    cfg = AugmentConfig(policy="ada", ada_target=0.6, ada_interval=2, ada_kimg=0.1)  # 64 * 2 / 100 per adjustment
    aug = A.Augmenter(cfg, "ada", batch_size=64, generator=_gen())
    for signal in (0.9, 0.9):
        aug.observe(signal)
    assert aug.p == pytest.approx(1.0)  # 1.28 clamped
    for signal in (0.1, 0.1):
        aug.observe(signal)
    assert aug.p == pytest.approx(0.0)
    aug.observe(0.9)
    assert aug.state() == {"p": 0.0, "signal_sum": 0.9, "signal_count": 1}  # half an interval, carried by checkpoints
    auto = AugmentConfig(policy="auto")
    assert A.resolve_policy(auto, "image", 500)[0] == "ada"
    assert A.resolve_policy(auto, "image", 5000) == ("none", "")
    assert A.resolve_policy(auto, "points", 500) == ("none", "")
    assert A.resolve_policy(AugmentConfig(), "image", 500) == ("none", "")  # the default is off


# A fast controller (an adjustment every critic step, 0.04 each) and a low target, so p moves within 40 steps.
ADA_RUN = [*IMAGES, "--augment", "auto", "--set", "data.limit=64", "--set", "augment.ada_kimg=0.2",
           "--set", "augment.ada_interval=1", "--set", "augment.ada_target=0.01",
           "--set", "run.deterministic=true", "--set", "run.log_every=1", "--set", "run.sample_every=1000",
           "--set", "run.checkpoint_every=2", "--steps", "40"]


def _p(run_dir: Path) -> list[float]:
    return [r["augment_p"] for r in metrics(run_dir) if "augment_p" in r]


@pytest.mark.slow
def test_ada_p_moves_on_small_data_and_survives_kill_9_and_resume(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = run_train(*ADA_RUN, "--out", str(straight))
    assert "augment: ada" in proc.stderr  # 64 images: the auto policy turns ADA on and says so
    p = _p(straight)
    assert len(p) == 40 and max(p) > 0 and len(set(p)) > 2  # p moves
    run = subprocess.Popen(train_cmd(*ADA_RUN, "--out", str(killed)), env=env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, text=True)
    wait_for_records(killed, 7, run)
    time.sleep(0.1)
    run.kill()  # SIGKILL
    run.wait()
    assert len(_p(killed)) < 40  # it was killed mid-run
    run_train("--out", str(killed), "--resume")
    assert _p(killed) == p  # p exactly as if the run had never stopped
    assert losses(killed) == losses(straight)

"""Real CPU training runs through the CLI: every objective on 2-D toy data, and 32 px images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from train_support import IMAGES, TOY, losses, metrics, run_train

from tgan_deploy.checkpoint import load_checkpoint, load_generator
from tgan_deploy.config import ModelConfig, TrainConfig
from tgan_deploy.models import build_critic, build_generator
from tgan_deploy.objectives import OBJECTIVES
from tgan_deploy.run_layout import list_checkpoints
from tgan_deploy.train.logging import read_metrics
from tgan_deploy.train.loop import autocast_for, train

# Every objective, each T-objective with a different pairing so all three pairings train for real.
CASES = [("t-sgan", "index"), ("t-wgan", "perm:2"), ("t-lsgan", "all"), ("t-hinge", "index"),
         ("sgan", "index"), ("rsgan", "index"), ("rasgan", "index"), ("ralsgan", "index"), ("hinge", "index"),
         ("wgan-gp", "index")]


def test_cases_cover_every_objective() -> None:
    assert sorted(name for name, _ in CASES) == sorted(OBJECTIVES)


def toy_config(out: Path, **run: object) -> TrainConfig:
    """TOY's model sizes as a config for in-process runs. No preset applies here (presets are tgan-train's), so
    these runs keep the reference's faithful spectral norm and Adam settings, which the CLI's TOY runs do not."""
    return TrainConfig.from_dict({
        "model": {"arch": "mlp", "latent_dim": 2, "toy_hidden": 16, "toy_depth": 2, "head_hidden": 16},
        "data": {"source": "builtin:grid25"}, "optim": {"batch_size": 16},
        "run": {"out": str(out), "threads": 1, **run}})


@pytest.mark.parametrize(("objective", "pairing"), CASES)
def test_toy_run_every_objective(tmp_path: Path, objective: str, pairing: str) -> None:
    # In-process (the real loop, real files) to spare ten torch imports; the CLI runs below are subprocesses.
    out = tmp_path / "run"
    cfg = toy_config(out, steps=24, log_every=8, sample_every=12, checkpoint_every=8, keep_last=2)
    cfg.objective.name, cfg.objective.pairing = objective, pairing
    train(cfg)
    rows = losses(out)
    assert [r[0] for r in rows] == [8, 16, 24]
    assert all(torch.isfinite(torch.tensor(r[1:])).all() for r in rows)
    # keep-last-2 pruned step 8; no best.pt: a run shorter than run.eval_every is not evaluated
    assert [p.name for p in list_checkpoints(out)] == ["step-00000016.pt", "step-00000024.pt"]
    assert not (out / "checkpoints" / "best.pt").exists()
    G, cfg, state = load_generator(out)
    assert cfg.objective.name == objective and state["step"] == 24
    assert G(torch.zeros(3, 2)).shape == (3, 2)
    for png in ("samples/step-00000012.png", "samples/step-00000024.png", "samples.png", "losses.png"):
        assert Image.open(out / png).size[0] > 100


def test_image_run_writes_every_artefact(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train(*IMAGES, "--steps", "24", "--out", str(out), "--set", "run.log_every=8", "--set", "run.sample_every=12",
              "--set", "run.checkpoint_every=12")
    assert (out / "config.yaml").is_file() and (out / "losses.png").is_file()
    assert [p.name for p in list_checkpoints(out)] == ["step-00000012.pt", "step-00000024.pt"]
    grid = Image.open(out / "samples.png")
    assert grid.mode == "L" and grid.size == (4 * 34 + 2, 4 * 34 + 2)  # 4x4 grid of 32 px + 2 px gutters
    state = load_checkpoint(out)
    assert {"generator", "generator_ema", "critic", "optim_g", "optim_d", "rng", "trainer"} <= set(state)
    G, _, _ = load_generator(out, weights="ema")
    assert G(torch.zeros(2, 16)).shape == (2, 1, 32, 32)
    assert [r["step"] for r in metrics(out) if "d_loss" in r] == [8, 16, 24]
    assert (out / "samples" / "step-00000012.png").is_file()


def test_run_dir_config_reruns_the_same_run(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    run_train(*TOY, "--steps", "4", "--out", str(first), "--set", "run.log_every=1",
              "--set", "run.deterministic=true")
    run_train("--config", str(first / "config.yaml"), "--out", str(second))
    assert losses(first) == losses(second)  # same config, same seed: bit-identical on CPU
    saved = json.loads(json.dumps(load_checkpoint(second)["config"]))
    assert saved["run"]["out"] == str(second) and saved["model"]["toy_hidden"] == 16


def test_bf16_autocast_happens_on_the_cpu(tmp_path: Path) -> None:
    model = ModelConfig(resolution=32, channels=1, base_channels=8, latent_dim=16, head_hidden=16)
    G, critic = build_generator(model), build_critic(model)
    for amp, dtype in (("bf16", torch.bfloat16), ("none", torch.float32)):
        with autocast_for(torch.device("cpu"), amp):
            x = G(torch.zeros(2, 16))
            assert x.dtype == critic.encoder(x).dtype == dtype, amp
    out = tmp_path / "run"  # and through the CLI: it trains, and the weights it saves stay float32
    run_train(*IMAGES, "--steps", "2", "--set", "optim.amp=bf16", "--set", "run.log_every=1", "--out", str(out))
    assert all(torch.isfinite(torch.tensor(r[1:])).all() for r in losses(out))
    assert {t.dtype for t in load_checkpoint(out)["generator"].values() if t.is_floating_point()} == {torch.float32}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_image_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = TrainConfig.from_dict({
        "model": {"resolution": 32, "channels": 1, "base_channels": 8, "latent_dim": 16, "head_hidden": 16},
        "objective": {"pairing": "all"}, "optim": {"batch_size": 16, "amp": "bf16"},
        "data": {"source": "builtin:mnist5k"},
        "run": {"out": str(out), "device": "cuda", "steps": 6, "log_every": 2, "sample_every": 6,
                "checkpoint_every": 6}})
    train(cfg)
    rows = losses(out)
    assert [r[0] for r in rows] == [2, 4, 6]
    assert all(torch.isfinite(torch.tensor(r[1:])).all() for r in rows)
    G, _, _ = load_generator(out)  # a GPU checkpoint loads on the CPU
    assert G(torch.zeros(2, 16)).shape == (2, 1, 32, 32)


def test_eval_every_logs_tgan_eval_metrics_and_plots_them(tmp_path: Path) -> None:
    """run.eval_every: PacGAN's mode metrics of the EMA generator land in metrics.jsonl and eval.png."""
    out = tmp_path / "run"
    cfg = TrainConfig.from_dict({"model": {"arch": "mlp", "latent_dim": 2, "toy_hidden": 32},
                                 "optim": {"batch_size": 32}, "data": {"source": "builtin:grid25"},
                                 "run": {"out": str(out), "steps": 6, "eval_every": 3, "eval_samples": 200,
                                         "sample_every": 6, "log_every": 3}})
    train(cfg)
    evals = [r for r in read_metrics(out) if "eval/modes" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(0 <= r["eval/modes"] <= 25 and 0 <= r["eval/hq_percent"] <= 100 for r in evals)
    assert (out / "eval.png").is_file()
    # best.pt holds the state of the evaluation with the lowest 2-D FD
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    argmin = min(evals, key=lambda r: r["eval/fd"])
    assert best["step"] == argmin["step"] == best["evaluation"]["step"]
    assert best["evaluation"]["metric"] == "fd" and best["evaluation"]["value"] == argmin["eval/fd"]

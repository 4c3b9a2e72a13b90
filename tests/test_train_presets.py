"""Per-data presets through the real CLI: what each data source trains with when nothing else is given,
that the config file and --set beat a preset, and the provenance comments of RUN_DIR/config.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from train_support import run_train

from tgan_deploy.config import TrainConfig
from tgan_deploy.train.settings import Provenance, read_sources, write_config

TOY_VALUES = {"model.arch": "mlp", "model.latent_dim": 2, "model.toy_hidden": 128, "model.spectral_norm": "none",
              "optim.lr_g": 1e-4, "optim.lr_d": 1e-4, "optim.beta1": 0.8, "optim.batch_size": 100,
              "optim.ema_decay": 0.0}
ONE_STEP = ["--steps", "1", "--set", "run.threads=1", "--set", "run.tensorboard=false"]


def trained(out: Path, *args: str) -> tuple[dict[str, object], dict[str, str], str]:
    """Run tgan-train for one iteration; (resolved values, their sources, the preset line on stderr)."""
    proc = run_train(*args, *ONE_STEP, "--out", str(out))
    config = yaml.safe_load((out / "config.yaml").read_text())
    values = {f"{s}.{k}": v for s, fields in config.items() for k, v in fields.items()}
    lines = [line for line in proc.stderr.splitlines() if " preset: " in line]
    assert len(lines) <= 1, proc.stderr
    return values, read_sources(out / "config.yaml"), lines[0] if lines else ""


def assert_preset(values: dict[str, object], sources: dict[str, str], expected: dict[str, object], name: str) -> None:
    for key, value in expected.items():
        assert values[key] == value, key
        assert sources[key] == f"preset {name}", key


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_2d_builtins_train_the_toy_setup_with_nothing_else(tmp_path: Path, name: str) -> None:
    values, sources, line = trained(tmp_path / "run", "--data", f"builtin:{name}")
    assert_preset(values, sources, TOY_VALUES, f"builtin:{name}")
    assert sources["data.source"] == "command line" and sources["model.head_hidden"] == "default"
    assert line.startswith(f"builtin:{name} preset: mlp, latent 2, width 128, no spectral norm on the critic, ")
    assert "G lr 1e-4" in line and "batch 100" in line and "no generator EMA" in line


def test_t_wgan_keeps_its_lipschitz_constraint(tmp_path: Path) -> None:
    values, sources, line = trained(tmp_path / "run", "--data", "builtin:ring8", "--objective", "t-wgan")
    assert_preset(values, sources, TOY_VALUES | {"model.spectral_norm": "torch"}, "builtin:ring8")
    assert "spectral norm (torch) on the critic" in line


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_digit_builtins_train_one_channel_at_32_px(tmp_path: Path, name: str) -> None:
    values, sources, line = trained(tmp_path / "run", "--data", f"builtin:{name}", "--set", "model.base_channels=8",
                                    "--set", "model.head_hidden=16", "--batch-size", "8")
    assert_preset(values, sources, {"model.channels": 1, "model.resolution": 32}, f"builtin:{name}")
    assert (values["model.arch"], sources["model.arch"]) == ("dcgan", "default")
    assert line.startswith(f"builtin:{name} preset: 1 channel, 32 px")


def write_images(folder: Path, mode: str, n: int = 12) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (20, 24) if mode == "L" else (20, 24, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3)])
def test_image_folders_train_the_channels_of_their_images(tmp_path: Path, mode: str, channels: int) -> None:
    folder = write_images(tmp_path / "images", mode)
    values, sources, line = trained(tmp_path / "run", "--data", str(folder), "--resolution", "32",
                                    "--set", "model.base_channels=8", "--set", "model.head_hidden=16",
                                    "--batch-size", "4", "--set", "data.cache_dir=none")
    kind = "grayscale" if channels == 1 else "colour"
    assert values["model.channels"] == channels and sources["model.channels"] == f"preset {kind} image folder"
    assert line.startswith(f"{kind} image folder preset: {channels} channel")
    assert sources["model.resolution"] == "command line"
    assert (tmp_path / "run" / "samples.png").exists()


def test_npz_points_get_the_toy_preset_and_npz_images_their_channels(tmp_path: Path) -> None:
    points = tmp_path / "points.npz"
    np.savez(points, points=np.random.default_rng(0).standard_normal((300, 2)).astype(np.float32))
    values, sources, _ = trained(tmp_path / "points-run", "--data", str(points))
    assert_preset(values, sources, TOY_VALUES, ".npz points")

    images = tmp_path / "images.npz"
    np.savez(images, images=np.zeros((16, 28, 28), np.uint8))  # [N, H, W]: grayscale
    values, sources, _ = trained(tmp_path / "images-run", "--data", str(images), "--resolution", "32",
                                 "--set", "model.base_channels=8", "--set", "model.head_hidden=16",
                                 "--batch-size", "4")
    assert values["model.channels"] == 1 and sources["model.channels"] == "preset .npz grayscale images"


def test_an_explicit_set_and_a_config_file_beat_the_preset(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("optim:\n  lr_g: 0.002\nmodel:\n  toy_hidden: 32\n")
    values, sources, line = trained(tmp_path / "run", "--data", "builtin:ring8", "--config", str(config),
                                    "--set", "model.toy_hidden=16", "--set", "model.spectral_norm=torch",
                                    "--batch-size", "20")
    assert (values["model.toy_hidden"], sources["model.toy_hidden"]) == (16, "command line")  # --set over file
    assert (values["model.spectral_norm"], sources["model.spectral_norm"]) == ("torch", "command line")
    assert (values["optim.batch_size"], sources["optim.batch_size"]) == (20, "command line")
    assert (values["optim.lr_g"], sources["optim.lr_g"]) == (0.002, f"file {config}")
    assert (values["optim.lr_d"], sources["optim.lr_d"]) == (1e-4, "preset builtin:ring8")  # the rest stays
    assert "yours instead: model.toy_hidden, model.spectral_norm, optim.lr_g, optim.batch_size" in line
    assert "width 128" not in line and "no spectral norm" not in line


def test_the_stylegan2_preset_learns_from_scratch_at_32_px_and_keeps_adas_settings_otherwise() -> None:
    from tgan_deploy.train.settings import resolve

    mnist = {"data.source": "builtin:mnist5k", "model.arch": "stylegan2"}
    scratch, provenance = resolve(None, mnist)  # the 2-core CPU preset (docs/training.md, experiments/stylegan2_sweep)
    assert (scratch.optim.lr_g, scratch.optim.lr_d, scratch.objective.r1_gamma) == (0.01, 0.0025, 10.0)
    assert "G lr 0.01" in provenance.preset_line and "R1 gamma 10," in provenance.preset_line
    tuned, provenance = resolve(None, mnist | {"run.init_from": "parent.pkl"})  # fine-tuning: StyleGAN2-ADA's
    assert (tuned.optim.lr_g, tuned.objective.r1_gamma) == (0.0025, 0.0002 * 32**2 / 32)
    assert "stylegan2 32 px fine-tuning preset" in provenance.preset_line
    wide, _ = resolve(None, mnist | {"model.resolution": 64, "optim.batch_size": 16})
    assert (wide.optim.lr_g, wide.model.channel_max) == (0.0025, 512)
    assert wide.objective.r1_gamma == 0.0002 * 64**2 / 16  # the user's batch


def test_resume_keeps_the_recorded_sources_and_the_config_reruns(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained(run, "--data", "builtin:ring8", "--set", "model.toy_hidden=16")
    run_train("--out", str(run), "--resume", "--steps", "2")  # reads run/config.yaml
    sources = read_sources(run / "config.yaml")
    assert sources["model.arch"] == "preset builtin:ring8" and sources["model.toy_hidden"] == "command line"
    assert sources["model.head_hidden"] == "default" and sources["run.steps"] == "command line"
    assert TrainConfig.from_file(run / "config.yaml").run.steps == 2  # still a plain config file


def test_config_yaml_round_trips_values_and_sources(tmp_path: Path) -> None:
    cfg = TrainConfig()
    cfg.data.source, cfg.run.out, cfg.data.cache_dir = "a folder # with a hash", "runs/x: y", ""
    cfg.optim.lr_g = 1.5e-4
    sources = {"data.source": "file cfg.yaml", "optim.lr_g": "preset builtin:ring8", "run.out": "command line"}
    write_config(tmp_path / "config.yaml", cfg, Provenance(sources))
    assert TrainConfig.from_file(tmp_path / "config.yaml") == cfg
    recorded = read_sources(tmp_path / "config.yaml")
    assert {k: recorded[k] for k in sources} == sources and recorded["model.arch"] == "default"
    cfg.dump(tmp_path / "plain.yaml")  # a config without the comments has no recorded sources
    assert read_sources(tmp_path / "plain.yaml") == {}

"""tgan-train --arch stylegan2 (train/style.py, models/stylegan2.py as the T-GAN encoder and generator): every
objective family trains, resume after kill -9 is the uninterrupted run, two gloo processes are one, and
--init-from starts from the StyleGAN2 fixtures the original code bases saved (../shared/fixtures/stylegan).

Models are the narrowest that run the real code paths: 16 px, widths 16/16/8, z and w 16, batch 8."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _stylegan_fixtures import FIXTURES, needs_fixtures
from test_stylegan2 import assert_image_close
from test_train_distributed import rounding_bound, single_and_torchrun
from train_support import env, error_line, losses, run_train, train_cmd, wait_for_records

from tgan_deploy.checkpoint import load_checkpoint, load_generator
from tgan_deploy.io import file_sha256
from tgan_deploy.models import build_critic, build_generator
from tgan_deploy.models.stylegan2 import Conv2dLayer, SynthesisLayer, ToRGBLayer
from tgan_deploy.models.stylegan_layers import FullyConnectedLayer

STYLE_LAYERS = (FullyConnectedLayer, Conv2dLayer, SynthesisLayer, ToRGBLayer, torch.nn.Linear)
SG2 = ["--arch", "stylegan2", "--data", "builtin:mnist5k", "--resolution", "16", "--batch-size", "8",
       "--set", "model.channel_base=128", "--set", "model.channel_max=16", "--set", "model.latent_dim=16",
       "--set", "model.w_dim=16", "--set", "model.head_hidden=16", "--set", "run.threads=1",
       "--set", "run.sample_grid=4", "--set", "run.eval_every=0", "--set", "run.log_every=1",
       "--set", "objective.r1_interval=2"]  # R1 on every other critic step, so 2 iterations run it
FROZEN = ["--set", "optim.lr_g=1e-30", "--set", "optim.lr_d=1e-30"]  # each Adam step is below half an ulp
FIXTURE_FILES = {"sg2ada-64.pkl": (64, False), "rosinality-64.pt": (64, False), "sg2ada-cond10-32.pkl": (32, True)}


def finite_losses(run: Path, steps: int) -> None:
    rows = losses(run)
    assert [r[0] for r in rows] == list(range(1, steps + 1))
    assert all(np.isfinite(r[1:]).all() for r in rows), rows


@pytest.mark.parametrize("objective", [
    ["--objective", "t-sgan"],  # index pairs, the reference's
    ["--objective", "t-hinge", "--pairing", "all", "--conditional"],  # same-class pairs, projection, label embed
    ["--objective", "t-wgan", "--pairing", "perm:2", "--set", "objective.pl_weight=2", "--set",
     "objective.pl_interval=1"],  # + path-length regularisation
    ["--objective", "sgan", "--conditional", "--set", "optim.amp=bf16"],  # the D's own output layer
    ["--objective", "wgan-gp"],  # gradient penalty through the single-sample critic
], ids=["t-sgan", "t-hinge-all-conditional", "t-wgan-perm-pl", "sgan-conditional-bf16", "wgan-gp"])
def test_each_objective_family_trains(objective: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train(*SG2, *objective, "--steps", "2", "--out", str(out))
    finite_losses(out, 2)
    state = load_checkpoint(out)
    assert state["config"]["model"]["style"]["generator"]["widths"] == [16, 16, 8]
    assert state["generator"]["mapping.w_avg"].abs().max() > 0  # tracked during training (it starts at 0)
    single_sample = objective[1] in ("sgan", "wgan-gp")
    assert ("head.fc1.parametrizations.weight.original" in state["critic"]) != single_sample  # pair head or D's out
    generator, _, _ = load_generator(out)
    labels = torch.arange(4) if "--conditional" in objective else None
    with torch.no_grad():
        assert generator(torch.randn(4, 16), labels).shape == (4, 1, 16, 16)


@pytest.mark.slow
def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = [*SG2, "--conditional", "--steps", "8", "--set", "run.deterministic=true", "--set",
            "run.checkpoint_every=1", "--set", "objective.pl_weight=2"]  # every random draw and lazy term on
    run_train(*args, "--out", str(straight))
    proc = subprocess.Popen(train_cmd(*args, "--out", str(killed)), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    wait_for_records(killed, 3, proc)
    time.sleep(random.Random(0).uniform(0.0, 0.3))  # checkpoint_every=1: likely inside a checkpoint write
    assert proc.poll() is None, "the run ended before it could be killed: make it longer"
    proc.kill()
    proc.wait()
    run_train(*args, "--out", str(killed), "--resume")
    assert losses(killed) == losses(straight)  # floats compared exactly
    a, b = load_checkpoint(straight), load_checkpoint(killed)
    for key in ("generator", "generator_ema", "critic"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    assert a["trainer"]["pl_mean"] == b["trainer"]["pl_mean"] > 0  # the path-length target resumes too
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    # Frozen weights (see test_train_distributed.py): 3 iterations of losses and gradient norms at the same
    # weights, with style mixing, w_avg tracking, R1 and same-class pairs over the global batch.
    single, multi = single_and_torchrun(tmp_path, [*SG2, *FROZEN, "--conditional", "--pairing", "all", "--steps", "3"])
    # Rounding bound as test_train_distributed.rounding_bound derives it: the longest float32 sum is a weight
    # gradient over 8 images x 16 x 16 pixels; a gradient passes forward and back through every layer.
    cfg = load_checkpoint(single)["config_obj"]
    layers = sum(isinstance(m, STYLE_LAYERS) for net in (build_generator(cfg.model), build_critic(cfg.model))
                 for m in net.modules())
    tau = rounding_bound(8 * 16 * 16, 2 * layers + 1)
    one, two = losses(single), losses(multi)
    assert [r[0] for r in two] == [1, 2, 3]
    for a, b in zip(one, two, strict=True):
        assert a[1:] == pytest.approx(b[1:], rel=tau)
    w_one = load_checkpoint(single)["generator"]["mapping.w_avg"]
    w_two = load_checkpoint(multi)["generator"]["mapping.w_avg"]
    assert (w_two - w_one).abs().max() <= tau * w_one.abs().max()  # means of w over the batch, 3 x 2 updates


# -- --init-from an imported StyleGAN2 ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """RGB .npz data at 32 px (10 labelled classes, the conditional fixture's) and 64 px (unlabelled)."""
    folder, rng = tmp_path_factory.mktemp("data"), np.random.default_rng(0)
    paths = {32: folder / "rgb32.npz", 64: folder / "rgb64.npz"}
    np.savez(paths[32], images=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), labels=np.arange(20) % 10)
    np.savez(paths[64], images=rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8))
    return paths


def fine_tune(name: str, data: dict[int, Path], out: Path, *extra: str, check: bool = True,
              ) -> subprocess.CompletedProcess[str]:
    resolution, conditional = FIXTURE_FILES[name]
    return run_train("--arch", "stylegan2", "--data", str(data[resolution]), "--resolution", str(resolution),
                     *(["--conditional"] if conditional else []), "--batch-size", "8", "--set", "run.threads=1",
                     "--set", "run.eval_every=0", "--set", "run.log_every=1", "--set", "run.sample_grid=2",
                     "--init-from", str(FIXTURES / name), "--out", str(out), *extra, check=check)


def reference_images(name: str, run: Path) -> tuple[torch.Tensor, np.ndarray]:
    """The run's EMA generator on the fixture's latents, and the original code's images of them."""
    npz = np.load(FIXTURES / Path(name).with_suffix(".npz"))
    generator, cfg, _ = load_generator(run)
    labels = torch.from_numpy(npz["labels"]) if cfg.model.num_classes else None
    with torch.no_grad():
        return generator(torch.from_numpy(npz["z"]), labels), npz["img_psi1"]


@needs_fixtures
@pytest.mark.parametrize("name", list(FIXTURE_FILES))
def test_init_from_a_fixture_keeps_its_generator(name: str, data: dict[int, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = fine_tune(name, data, out, *FROZEN, "--steps", "1")
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("init-from")]
    assert len(line) == 1 and "fresh: critic: head" in line[0], proc.stderr  # the pair head starts fresh
    ours, theirs = reference_images(name, out)
    assert_image_close(ours, theirs)  # test_stylegan2.py derives the bound
    sha = file_sha256(FIXTURES / name)
    assert f"init_from_sha256: {sha}" in (out / "config.yaml").read_text()
    if FIXTURE_FILES[name][1]:  # one export (the conditional model's: z and label inputs), for the time it takes
        exported = tmp_path / "export"
        proc = subprocess.run([sys.executable, "-m", "tgan_deploy", "export", str(out), "--out", str(exported),
                               "--parity-batches", "8"], env=env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        meta = json.loads((exported / "model.json").read_text())
        assert meta["init_from_sha256"] == sha and meta["family"] == "stylegan2"
        import onnxruntime as ort

        npz = np.load(FIXTURES / Path(name).with_suffix(".npz"))
        session = ort.InferenceSession(str(exported / meta["files"]["generator"]))
        (image,) = session.run(None, {"z": npz["z"], "label": npz["labels"].astype(np.int64)})
        # The export's own parity bound (1e-4, parity.json) is for ONNX Runtime against this eager generator;
        # the fixture bound above has a 5x margin over the import's error, which absorbs it.
        assert_image_close(torch.from_numpy(image), theirs)


@needs_fixtures
def test_fine_tuning_a_fixture_with_the_defaults_moves_its_images(data: dict[int, Path], tmp_path: Path) -> None:
    name, out = "sg2ada-cond10-32.pkl", tmp_path / "run"
    fine_tune(name, data, out, "--steps", "2", "--augment", "ada", "--freeze-d", "1")
    finite_losses(out, 2)
    ours, theirs = reference_images(name, out)
    assert np.abs(ours.numpy() - theirs).max() > 1e-2  # two steps at lr 0.0025 move the images visibly
    parent_d = {k.removeprefix("encoder."): v for k, v in load_checkpoint(out)["critic"].items()}
    from tgan_deploy.foreign.convert import convert_file

    original = convert_file(FIXTURES / name)["critic"]
    frozen = [k for k in original if k.startswith("b32.")]  # FreezeD 1: the first (32 px) block
    assert frozen and all(torch.equal(parent_d[k], original[k]) for k in frozen)
    assert not torch.equal(parent_d["b16.conv0.weight"], original["b16.conv0.weight"])  # the next one trains


@needs_fixtures
@pytest.mark.parametrize("case", ["resolution", "classes", "not-stylegan2"])
def test_a_parent_that_cannot_serve_the_run_is_refused_in_one_line(case: str, data: dict[int, Path],
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "run"
    parent, args, message = {
        "resolution": ("sg2ada-64.pkl", ["--data", str(data[32]), "--resolution", "32"], "model.resolution 64"),
        "classes": ("sg2ada-cond10-32.pkl", ["--data", str(data[64]), "--resolution", "32"], "has 10 classes"),
        # a StyleGAN3 snapshot imports (issue 29), but a stylegan2 run cannot start from it
        "not-stylegan2": ("sg3t-64.pkl", ["--data", str(data[64]), "--resolution", "64"],
                          "has model.arch 'stylegan3', this run 'stylegan2'"),
    }[case]
    proc = run_train("--arch", "stylegan2", *args, "--batch-size", "8", "--steps", "1",
                     "--init-from", str(FIXTURES / parent), "--out", str(out), check=False)
    assert proc.returncode == 2
    assert message in error_line(proc)
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".lock"]  # nothing written

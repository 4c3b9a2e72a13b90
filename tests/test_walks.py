"""Latent tools end to end: truncated and interpolated samples on every CPU backend and through the batcher,
walks (latents, frames, GIF / MP4 / PNG strip), what the files record, and tgan-sample --walk as users run it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest
from _factories import small_config, write_checkpoint
from _runtime_factories import TinyModels, export, shared_tiny_models
from _subprocess import repo_env
from PIL import Image

from tgan_deploy.errors import MissingExtraError, TganError
from tgan_deploy.runtime import BatchingSampler, InvalidLatentOptionError, Sampler, interpolate_latents, latents
from tgan_deploy.runtime.animation import gif_bytes, save_animation
from tgan_deploy.runtime.images import make_grid
from tgan_deploy.runtime.provenance import read_png_info
from tgan_deploy.runtime.walk import render_walk, segment_steps, walk_latents

CONTROLS = [{"truncation": 0.5}, {"truncation": 1.2, "psi": 0.8}, {"psi": -0.7}]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def gray_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grayscale model (like the demo's MNIST one): GIF frames keep its pixels exactly."""
    tmp = tmp_path_factory.mktemp("gray")
    return export(write_checkpoint(tmp / "g.pt", small_config(channels=1), step=1), tmp / "export")


@pytest.fixture(scope="module")
def ort(tiny_models: TinyModels) -> Sampler:
    return Sampler.open(tiny_models.export, backend="onnxruntime", device="cpu", max_batch=8, threads=1)


@pytest.fixture(scope="module")
def gray(gray_export: Path) -> Sampler:
    return Sampler.open(gray_export, backend="onnxruntime", device="cpu", threads=1)


def level_gap(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- the same numbers on every backend and through the batcher ---------------------------------------------------
@pytest.mark.parametrize("controls", CONTROLS)
def test_truncated_and_interpolated_samples_agree_across_onnxruntime_and_torch(
        tiny_models: TinyModels, ort: Sampler, controls: dict) -> None:
    with Sampler.open(tiny_models.checkpoint, backend="torch", device="cpu", threads=1) as torch_sampler:
        seeds = list(range(20, 36))
        a, b = ort.sample(seeds, **controls), torch_sampler.sample(seeds, **controls)
        assert level_gap(a, b) <= 1
        assert not np.array_equal(a, ort.sample(seeds))  # the controls really changed the images
        for method in ("slerp", "lerp"):
            morph_ort = ort.interpolate(3, 17, 9, method, **controls)
            morph_torch = torch_sampler.interpolate(3, 17, 9, method, **controls)
            assert morph_ort.shape == (9, 32, 32, 3) and level_gap(morph_ort, morph_torch) <= 1
        walk_ort = render_walk(ort, [3, 17, 42], 12, **controls)
        assert level_gap(walk_ort, render_walk(torch_sampler, [3, 17, 42], 12, **controls)) <= 1


def test_the_batcher_gives_the_samplers_exact_images_for_mixed_controls(ort: Sampler) -> None:
    requests = [([1, 2, 3], {}), ([1, 2, 3], {"truncation": 0.5}), ([4], {"psi": 0.3}),
                ([5, 6], {"truncation": 0.9, "psi": -1.0})] * 3
    with BatchingSampler(ort, max_delay_ms=50) as batcher:
        futures = [batcher.submit(seeds, **controls) for seeds, controls in requests]
        wait(futures, timeout=60)
        for (seeds, controls), future in zip(requests, futures, strict=True):
            np.testing.assert_array_equal(future.result(), ort.sample(seeds, **controls))
        np.testing.assert_array_equal(batcher.sample([7], timeout=60, truncation=0.4), ort.sample([7], truncation=0.4))
        with pytest.raises(InvalidLatentOptionError):
            batcher.submit([1], truncation=0.0)


# -- walk latents ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed_count", "frames"), [(2, 2), (2, 30), (3, 30), (4, 4), (5, 100), (7, 20)])
def test_segment_steps_spread_frames_evenly_and_sum_to_the_frames(seed_count: int, frames: int) -> None:
    steps = segment_steps(seed_count, frames)
    assert len(steps) == seed_count - 1 and sum(steps) == frames - 1
    assert max(steps) - min(steps) <= 1 and min(steps) >= 1 and steps == sorted(steps, reverse=True)


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_a_walk_passes_exactly_through_every_seeds_latent(method: str) -> None:
    seeds, frames = [3, 17, 42, 3], 20
    z = walk_latents(seeds, 16, frames, method, truncation=0.8)
    assert z.shape == (frames, 16) and z.dtype == np.float32
    keys = latents(seeds, 16, truncation=0.8)
    at = np.cumsum([0, *segment_steps(len(seeds), frames)])  # frame index of each seed
    np.testing.assert_array_equal(z[at], keys)
    start, stop = at[1], at[2]  # a segment is the pairwise interpolation, keyframes shared
    np.testing.assert_array_equal(z[start:stop + 1], interpolate_latents(keys[1], keys[2], stop - start + 1, method))


@pytest.mark.parametrize(("seeds", "frames", "method", "message"), [
    ([3], 10, "slerp", "at least 2 seeds"),
    ([3, 4], 1, "slerp", "frames must be an integer >= 2"),
    ([3, 4], 2.5, "slerp", "frames must be an integer >= 2"),
    ([1, 2, 3, 4], 3, "slerp", "use at least 4 frames"),
    ([3, 4], 10, "cubic", "not one of slerp, lerp"),
])
def test_bad_walks_name_the_fix(seeds: list[int], frames: int, method: str, message: str) -> None:
    with pytest.raises(InvalidLatentOptionError, match=message):
        walk_latents(seeds, 8, frames, method)


def test_a_walk_of_a_points_model_is_refused(tiny_models: TinyModels) -> None:
    with Sampler.open(tiny_models.toy_export) as toy, pytest.raises(TganError, match="needs an image model"):
        render_walk(toy, [1, 2], 4)


def test_rendered_walk_frames_are_the_seeds_images_at_the_keyframes(ort: Sampler) -> None:
    sizes: list[int] = []
    frames = render_walk(ort, [3, 17, 42], 21, "slerp", truncation=0.6, progress=sizes.append)
    assert frames.shape == (21, 32, 32, 3) and sizes == [8, 8, 5]  # chunks of max_batch, each reported
    np.testing.assert_array_equal(frames[[0, 10, 20]], ort.sample([3, 17, 42], truncation=0.6))


# -- writers -------------------------------------------------------------------------------------------------------
def gif_frames(path: Path) -> tuple[list[np.ndarray], dict]:
    with Image.open(path) as gif:
        info = dict(gif.info)
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames, info


def test_gif_has_every_frame_loops_and_keeps_grayscale_exact(gray: Sampler, tmp_path: Path) -> None:
    frames = render_walk(gray, [3, 17, 42], 15)
    save_animation(tmp_path / "w.gif", frames, fps=20, info={"walk": [3, 17, 42]})
    decoded, info = gif_frames(tmp_path / "w.gif")
    assert len(decoded) == 15 and info["loop"] == 0 and info["duration"] == 50
    assert json.loads(info["comment"]) == {"walk": [3, 17, 42]}
    np.testing.assert_array_equal(np.stack(decoded)[..., :1], frames)
    np.testing.assert_array_equal(decoded[0][..., 0], gray.sample([3])[0, ..., 0])  # first frame: seed 3's image
    assert gif_bytes(frames, 20, "x") == gif_bytes(frames.copy(), 20, "x")  # deterministic bytes


def test_gif_of_a_colour_model_is_quantised_to_256_colours_without_dither(ort: Sampler, tmp_path: Path) -> None:
    frames = render_walk(ort, [3, 17], 6)
    save_animation(tmp_path / "c.gif", frames, fps=10)
    decoded = np.stack(gif_frames(tmp_path / "c.gif")[0])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 4  # median cut: close, not exact, beyond 256 colours


def test_png_strip_is_the_grid_of_the_frames_with_its_info(ort: Sampler, tmp_path: Path) -> None:
    frames = render_walk(ort, [3, 17], 5)
    save_animation(tmp_path / "s.png", frames, info={"walk": [3, 17], "truncation": None})
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "s.png")), make_grid(frames, 5))
    assert read_png_info(tmp_path / "s.png") == {"walk": [3, 17], "truncation": None}
    save_animation(tmp_path / "s3.png", frames, columns=3)
    assert Image.open(tmp_path / "s3.png").size == (2 + 3 * 34, 2 + 2 * 34)


def test_mp4_has_every_frame_and_its_info(gray: Sampler, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    frames = render_walk(gray, [3, 17, 42], 12)
    save_animation(tmp_path / "w.mp4", frames, fps=12, info={"walk": [3, 17, 42]})
    with av.open(str(tmp_path / "w.mp4")) as container:
        assert json.loads(container.metadata["comment"]) == {"walk": [3, 17, 42]}
        stream = container.streams.video[0]
        assert stream.average_rate == 12
        decoded = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
    assert decoded.shape == (12, 32, 32)
    assert np.abs(decoded.astype(int) - frames[..., 0]).mean() < 6  # H.264 at crf 18: lossy but close
    first = (tmp_path / "w.mp4").read_bytes()
    save_animation(tmp_path / "w.mp4", frames, fps=12, info={"walk": [3, 17, 42]})
    assert (tmp_path / "w.mp4").read_bytes() == first  # deterministic bytes


def test_mp4_without_its_extra_names_the_extra_and_writes_nothing(ort: Sampler, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'tgan-deploy\[video\]'"):
        save_animation(tmp_path / "w.mp4", render_walk(ort, [1, 2], 3))
    assert list(tmp_path.iterdir()) == []


# -- tgan-sample --walk as users run it -------------------------------------------------------------------------
def tgan_sample(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `tgan-sample` console script beside this interpreter (else the module, as `tgan sample`)."""
    script = shutil.which("tgan-sample", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "tgan_deploy", "sample"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=repo_env(), timeout=180)


def test_tgan_sample_walk_writes_a_gif_whose_first_frame_is_seed_3(gray_export: Path, gray: Sampler,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "walk.gif"
    proc = tgan_sample(str(gray_export), "--walk", "3,17,42", "--frames", "30", "--truncation", "0.8",
                       "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote a 30-frame walk through seeds 3,17,42" in proc.stdout
    decoded, info = gif_frames(out)
    assert len(decoded) == 30 and info["duration"] == 100  # default 10 fps
    np.testing.assert_array_equal(decoded[0][..., 0], gray.sample([3], truncation=0.8)[0, ..., 0])
    np.testing.assert_array_equal(decoded[-1][..., 0], gray.sample([42], truncation=0.8)[0, ..., 0])
    made = json.loads(info["comment"])
    assert made["walk"] == [3, 17, 42] and made["frames"] == 30 and made["method"] == "slerp"
    assert made["truncation"] == 0.8 and made["psi"] is None and len(made["source_checkpoint_sha256"]) == 64
    strip = tmp_path / "walk.png"
    proc = tgan_sample(str(gray_export), "--walk", "3,17", "--frames", "4", "--method", "lerp", "--out", str(strip))
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(strip))[..., None],
                                  make_grid(render_walk(gray, [3, 17], 4, "lerp"), 4))


def test_tgan_sample_records_its_controls_in_pngs_and_npz(tiny_models: TinyModels, tmp_path: Path) -> None:
    export_dir = str(tiny_models.export)
    proc = tgan_sample(export_dir, "--seeds", "5,9", "--truncation", "0.7", "--out", str(tmp_path / "pngs"))
    assert proc.returncode == 0, proc.stderr
    info = read_png_info(tmp_path / "pngs" / "seed-000009.png")
    assert info["seed"] == 9 and info["truncation"] == 0.7 and info["psi"] is None
    assert info["software"].startswith("tgan-deploy ") and info["model"] == tiny_models.export.name
    assert tgan_sample(export_dir, "--seeds", "5,9", "--psi", "0.5", "--out", str(tmp_path / "s.npz")).returncode == 0
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        recorded = json.loads(str(data["provenance"]))
    assert recorded["seeds"] == [5, 9] and recorded["psi"] == 0.5 and recorded["truncation"] is None
    assert tgan_sample(export_dir, "--n", "2", "--out", str(tmp_path / "g.png")).returncode == 0
    assert read_png_info(tmp_path / "g.png")["seeds"] == [0, 1]


@pytest.mark.parametrize(("args", "message"), [
    (["--walk", "3,17", "--truncation", "0", "--out", "OUT/w.gif"], "truncation must be >= 0.01"),
    (["--walk", "3,17", "--truncation", "nan", "--out", "OUT/w.gif"], "truncation must be a finite number"),
    (["--seeds", "1,2", "--truncation", "-1", "--out", "OUT/x.npz"], "truncation must be >= 0.01"),
    (["--walk", "3", "--out", "OUT/w.gif"], "at least 2 seeds"),
    (["--walk", "3,17", "--frames", "1", "--out", "OUT/w.gif"], "frames must be an integer >= 2"),
    (["--walk", "3,17,42", "--frames", "2", "--out", "OUT/w.gif"], "use at least 3 frames"),
    (["--walk", "3,17", "--method", "cubic", "--out", "OUT/w.gif"], "not one of slerp, lerp"),
    (["--walk", "3,x", "--out", "OUT/w.gif"], "--walk must be comma-separated integers"),
    (["--walk", "3,-1", "--out", "OUT/w.gif"], "non-negative integer"),
    (["--walk", "3,17", "--out", "OUT/w.jpg"], "FILE.gif, FILE.mp4 or FILE.png"),
    (["--walk", "3,17", "--out", "OUT"], "FILE.gif, FILE.mp4 or FILE.png"),
    (["--walk", "3,17", "--fps", "100", "--out", "OUT/w.gif"], "too fast for a GIF"),
    (["--walk", "3,17", "--fps", "0", "--out", "OUT/w.gif"], "fps must be a number > 0"),
    (["--frames", "30", "--out", "OUT/w.gif"], "add --walk SEEDS"),
    (["--walk", "3,17", "--seeds", "1,2", "--out", "OUT/w.gif"], "give only --walk"),
    (["TOY", "--walk", "3,17", "--out", "OUT/w.gif"], "needs an image model"),
])
def test_tgan_sample_bad_walks_are_one_line_exit_2_and_write_nothing(tiny_models: TinyModels, tmp_path: Path,
                                                                     args: list[str], message: str) -> None:
    model = str(tiny_models.toy_export) if args[0] == "TOY" else str(tiny_models.export)
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in args if a != "TOY"]
    proc = tgan_sample(model, *argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()

"""w-space in the runtime: seed and pixel rules, truncation in w, style mixing, walks in w, on a real export.

The export is tests/_style_export.py's stand-in style model (the contract's torch interface) written to
generator.onnx + mapping.onnx + synthesis.onnx and a model.json with the style fields, run by real ONNX
Runtime sessions; the torch backend runs the same stand-in module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from _style_export import TinyStyle, shared_style_export, style_metadata
from _subprocess import repo_env
from PIL import Image

from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.checkpoint_metadata import with_style_fields
from tgan_deploy.errors import TganError
from tgan_deploy.export.onnx import to_uint8 as graph_to_uint8
from tgan_deploy.runtime.backends.torch import TorchBackend
from tgan_deploy.runtime.batching import BatchingSampler
from tgan_deploy.runtime.errors import InvalidLatentOptionError, InvalidSeedError, ModelLoadError
from tgan_deploy.runtime.images import make_grid, to_uint8
from tgan_deploy.runtime.mixing_grid import style_mixing_grid
from tgan_deploy.runtime.sampler import Sampler
from tgan_deploy.runtime.walk import render_walk

# ORT against torch on the same float32 graph: both sides round every op to float32 but may sum in another order
# (MLAS vs ATen GEMM blocking, fused vs unfused ops). The stand-in's longest chain is ~10 ops of width <= 8 on
# values of size ~1-3: the gap is a few float32 ulps of those values (2**-23 * 3 * 10 ~ 4e-6); 1e-5 * (1 + |x|)
# holds that on any x86 kernel set (AVX2 or AVX-512), and a wrong layer or psi moves images by ~1e-1.
FLOAT_TOL = 1e-5


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> TinyStyle:
    return shared_style_export(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_style_export(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def sampler(export: Path) -> Sampler:
    with Sampler.open(export) as s:
        yield s


def tgan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgan_deploy", *args], capture_output=True, text=True,
                          env=repo_env(), timeout=180)


def close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=FLOAT_TOL * (1 + float(np.abs(b).max())))


def test_metadata_fields_and_old_model_json(export: Path, sampler: Sampler) -> None:
    meta = json.loads((export / "model.json").read_text())
    assert meta["seed_rule"] == "nvlabs" and meta["num_ws"] == 4 and len(meta["w_avg"]) == 6
    assert sampler.w_space and sampler.num_ws == 4 and sampler.seed_rule == sampler.pixel_rule == "nvlabs"
    old = {k: v for k, v in meta.items() if k not in ("family", "source_format", "seed_rule", "pixel_rule",
                                                      "w_dim", "num_ws", "w_avg", "default_psi")}
    plain = ArtefactMetadata.from_dict(old)  # a model.json written before these fields loads as our own model
    assert (plain.seed_rule, plain.pixel_rule, plain.w_space, plain.default_psi) == ("tgan", "tgan", False, 1.0)
    with pytest.raises(TganError, match=r"seed_rule 'future'.*update tgan-deploy"):
        ArtefactMetadata.from_dict({**meta, "seed_rule": "future"})


def test_nvlabs_seed_rule_is_what_generate_py_draws(sampler: Sampler) -> None:
    z = np.random.RandomState(85).randn(1, 8).astype(np.float32)  # NVlabs generate.py, seed 85
    np.testing.assert_array_equal(sampler.seed_latents([85]), z)
    np.testing.assert_array_equal(sampler.sample([85]), sampler.sample_latents(z))
    with pytest.raises(InvalidSeedError, match=r"below 2\*\*32") as info:
        sampler.sample([2**32])
    assert "\n" not in str(info.value)


def test_nvlabs_pixel_rule() -> None:
    x = np.array([-1.5, -1.0, -0.004, 0.0, 0.5, 0.999, 1.0, 2.0, -1.0039], np.float32)
    # x * 127.5 + 128 = -63.25, 0.5, 127.49, 128, 191.75, 255.37, 255.5, 383, 0.0027 -> clamp, truncate
    np.testing.assert_array_equal(to_uint8(x, "nvlabs"), [0, 0, 127, 128, 191, 255, 255, 255, 0])
    noise = np.random.default_rng(0).uniform(-1.2, 1.2, 10_000).astype(np.float32)
    # the graph's op (export/onnx.py) is the same float32 arithmetic: equal to the byte
    np.testing.assert_array_equal(graph_to_uint8(torch.from_numpy(noise), "nvlabs").numpy(), to_uint8(noise, "nvlabs"))
    np.testing.assert_array_equal(graph_to_uint8(torch.from_numpy(noise)).numpy(), to_uint8(noise))


def test_sample_uses_the_models_pixel_rule(sampler: Sampler) -> None:
    z = sampler.seed_latents([3, 4])
    want = to_uint8(sampler.generate(z), "nvlabs").transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(sampler.sample([3, 4]), want)


def test_psi_1_generator_onnx_equals_mapping_then_synthesis(export: Path, sampler: Sampler) -> None:
    z = sampler.seed_latents(range(7))
    whole = ort.InferenceSession(str(export / "generator.onnx")).run(None, {"z": z})[0]
    close(sampler.generate(z), whole)  # default_psi 1, no mixing: the one-graph generator's image


def test_truncation_in_w_is_numpys_formula_on_the_mapping_output(sampler: Sampler, stand_in: TinyStyle) -> None:
    z = sampler.seed_latents([1, 2, 3])
    ws = sampler.map(z)
    avg = stand_in.w_avg.numpy()
    for psi, cutoff in ((0.7, None), (0.5, 2), (-0.3, 1)):
        want = ws.copy()
        layers = slice(0, cutoff)
        want[:, layers] = avg + np.float32(psi) * (ws[:, layers] - avg)
        got = sampler.seed_ws([1, 2, 3], psi=psi, psi_cutoff=cutoff)
        np.testing.assert_array_equal(got, want)
        if cutoff is not None:
            np.testing.assert_array_equal(got[:, cutoff:], ws[:, cutoff:])  # layers past the cutoff untouched
        np.testing.assert_array_equal(sampler.sample([1, 2, 3], psi=psi, psi_cutoff=cutoff), sampler.sample_ws(want))
    np.testing.assert_array_equal(sampler.seed_ws([1, 2, 3], psi=1.0), ws)  # psi 1 is w itself, as in NVlabs' code
    assert not np.array_equal(sampler.sample([1], psi=0.5), sampler.sample([1]))  # psi really changes the image
    np.testing.assert_array_equal(sampler.seed_ws([5], psi=0.0)[0], np.broadcast_to(avg, (4, 6)))


def test_mixing_takes_coarse_layers_from_the_seed_and_the_rest_from_the_mix_seed(sampler: Sampler) -> None:
    own, other = sampler.map(sampler.seed_latents([3, 4])), sampler.map(sampler.seed_latents([9, 10]))
    mixed = sampler.seed_ws([3, 4], mix_seeds=[9, 10], mix_cutoff=2)
    np.testing.assert_array_equal(mixed[:, :2], own[:, :2])
    np.testing.assert_array_equal(mixed[:, 2:], other[:, 2:])
    one = sampler.seed_ws([3, 4], mix_seeds=9, mix_cutoff=3)  # one mix seed for every seed
    np.testing.assert_array_equal(one[:, 3:], np.repeat(other[:1, 3:], 2, axis=0))
    image = sampler.sample([3, 4], mix_seeds=[9, 10], mix_cutoff=2)
    np.testing.assert_array_equal(image, sampler.sample_ws(mixed))
    assert not np.array_equal(image, sampler.sample([3, 4]))  # the fine layers really changed the image
    for kwargs, message in (({"mix_seeds": 9}, "needs mix_cutoff"), ({"mix_cutoff": 2}, "without mix seeds"),
                            ({"mix_seeds": 9, "mix_cutoff": 5}, r"1 \.\. 4"), ({"psi_cutoff": 0}, "psi_cutoff"),
                            ({"mix_seeds": [1, 2, 3], "mix_cutoff": 1}, "3 mix seeds for 2 seeds")):
        with pytest.raises(InvalidLatentOptionError, match=message):
            sampler.sample([3, 4], **kwargs)


def test_interpolation_and_walks_are_lines_in_w(sampler: Sampler) -> None:
    ends = sampler.seed_ws([3, 17], psi=0.7)
    frames = sampler.interpolate(3, 17, 5, psi=0.7)
    mid = (0.5 * ends[0].astype(np.float64) + 0.5 * ends[1]).astype(np.float32)
    np.testing.assert_array_equal(frames[2], sampler.sample_ws(mid[None])[0])
    np.testing.assert_array_equal(frames[0], sampler.sample([3], psi=0.7)[0])
    np.testing.assert_array_equal(frames[-1], sampler.sample([17], psi=0.7)[0])
    walk = render_walk(sampler, [3, 17, 42], 5, psi=0.7)
    np.testing.assert_array_equal(walk[[0, 2, 4]], sampler.sample([3, 17, 42], psi=0.7))
    with pytest.raises(InvalidLatentOptionError, match="straight lines"):
        sampler.interpolate(3, 17, 5, "slerp")


def test_torch_backend_on_the_stand_in_equals_onnx_runtime(sampler: Sampler, stand_in: TinyStyle) -> None:
    meta = style_metadata(stand_in)
    with Sampler(TorchBackend.from_generator(stand_in, meta), meta) as torch_sampler:
        z = sampler.seed_latents(range(6))
        close(torch_sampler.map(z), sampler.map(z))
        controls = {"psi": 0.6, "psi_cutoff": 3, "mix_seeds": 11, "mix_cutoff": 2}
        close(torch_sampler.synthesize(torch_sampler.seed_ws(range(6), **controls)),
              sampler.synthesize(sampler.seed_ws(range(6), **controls)))
        # uint8: a float gap of FLOAT_TOL moves a pixel across a truncation boundary at most one level
        gap = np.abs(torch_sampler.sample(range(6), **controls).astype(int) - sampler.sample(range(6), **controls))
        assert gap.max() <= 1


def test_torch_metadata_from_a_style_generator_and_origin(stand_in: TinyStyle) -> None:
    base = ArtefactMetadata(kind="image", latent_dim=8, resolution=8, channels=3)
    meta = with_style_fields(base, stand_in, {"family": "stylegan2", "source_format": "nvlabs-pkl",
                                              "seed_rule": "nvlabs", "pixel_rule": "nvlabs", "source_sha256": "ab"})
    assert (meta.w_dim, meta.num_ws, meta.seed_rule, meta.source_checkpoint_sha256) == (6, 4, "nvlabs", "ab")
    np.testing.assert_array_equal(np.float32(meta.w_avg), stand_in.w_avg.numpy())


def test_batching_sampler_shares_one_mapping_pass_and_equals_sample(sampler: Sampler) -> None:
    with BatchingSampler(sampler, max_batch=16, max_delay_ms=50) as batcher:
        futures = [batcher.submit([1, 2], psi=0.5, psi_cutoff=2), batcher.submit([3], mix_seeds=8, mix_cutoff=1),
                   batcher.submit([4]), batcher.submit_ws(sampler.seed_ws([5], psi=0.2))]
        got = [f.result(timeout=30) for f in futures]
    want = [sampler.sample([1, 2], psi=0.5, psi_cutoff=2), sampler.sample([3], mix_seeds=8, mix_cutoff=1),
            sampler.sample([4]), sampler.sample([5], psi=0.2)]
    for g, w in zip(got, want, strict=True):
        # a shared batch maps every row in one GEMM; MLAS computes each row alike at any batch size here (rows of
        # width <= 8 fit one kernel block), so the images are equal to the byte
        np.testing.assert_array_equal(g, w)


def test_tgan_sample_takes_the_controls(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed.npz"
    result = tgan("sample", str(export), "--seeds", "3,4", "--psi", "0.7", "--psi-cutoff", "2",
                     "--mix-seeds", "9", "--mix-cutoff", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Sampler.open(export) as s:
        want = s.sample([3, 4], psi=0.7, psi_cutoff=2, mix_seeds=9, mix_cutoff=2)
    np.testing.assert_array_equal(np.load(out)["images"], want)
    walk = tgan("sample", str(export), "--walk", "3,4", "--frames", "3", "--psi-cutoff", "2",
                   "--out", str(tmp_path / "walk.png"))
    assert walk.returncode == 0, walk.stderr
    bulk = tgan("sample", str(export), "--n", "3", "--seed", str(2**32 - 2), "--out", str(tmp_path / "big"))
    assert bulk.returncode == 2 and "below 2**32" in bulk.stderr and len(bulk.stderr.strip().splitlines()) == 1


def test_bulk_writes_the_controlled_images(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "bulk"
    result = tgan("sample", str(export), "--n", "3", "--seed", "5", "--psi", "0.5", "--psi-cutoff", "1",
                     "--mix-seeds", "2", "--mix-cutoff", "3", "--format", "npy", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Sampler.open(export) as s:
        want = s.sample([5, 6, 7], psi=0.5, psi_cutoff=1, mix_seeds=2, mix_cutoff=3)
    np.testing.assert_array_equal(np.load(out / "images.npy"), want)
    job = json.loads((out / "manifest.json").read_text())["job"]
    assert (job["psi_cutoff"], job["mix_seed"], job["mix_cutoff"]) == (1, 2, 3)


@pytest.mark.parametrize("args", [["--psi-cutoff", "2"], ["--mix-seeds", "3", "--mix-cutoff", "1"]])
def test_w_controls_are_refused_on_our_own_models(args: list[str], plain_export: Path, tmp_path: Path) -> None:
    result = tgan("sample", str(plain_export), "--seeds", "1", *args, "--out", str(tmp_path / "x.npz"))
    assert result.returncode == 2 and "need a style model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.npz").exists()


@pytest.fixture(scope="module")
def plain_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from _runtime_factories import shared_tiny_models

    return shared_tiny_models(tmp_path_factory).export


def test_style_mixing_grid_is_nvlabs_layout(export: Path, sampler: Sampler, tmp_path: Path) -> None:
    out = tmp_path / "mix.png"
    result = tgan("sample", str(export), "--seeds", "3,4,5", "--mix-seeds", "8,9", "--mix-cutoff", "2",
                  "--mix-grid", "--psi", "0.8", "--out", str(out))
    assert result.returncode == 0, result.stderr
    cells = style_mixing_grid(sampler, [3, 4, 5], [8, 9], 2, psi=0.8)
    assert not cells[0].any()  # the corner
    np.testing.assert_array_equal(cells[1:4], sampler.sample([3, 4, 5], psi=0.8))  # top row: the columns' images
    np.testing.assert_array_equal(cells[[4, 8]], sampler.sample([8, 9], psi=0.8))  # left column: the rows'
    np.testing.assert_array_equal(cells[8 + 2], sampler.sample([4], mix_seeds=9, mix_cutoff=2, psi=0.8)[0])
    np.testing.assert_array_equal(np.asarray(Image.open(out)), make_grid(cells, 4))


def test_a_conditional_style_model_maps_each_row_and_its_mix_row_under_its_label() -> None:
    model = TinyStyle(num_classes=3, seed=1).eval()
    meta = style_metadata(model, seed_rule="tgan", pixel_rule="tgan")
    with Sampler(TorchBackend.from_generator(model, meta), meta) as sampler:
        z = sampler.seed_latents([3, 4])
        labels = np.array([0, 2])
        # the runtime maps rows and mix rows in one pass (torch's GEMM rounds by batch size: compare that pass)
        both = np.concatenate([z, sampler.seed_latents([9, 9])])
        with torch.inference_mode():
            ws = model.mapping(torch.from_numpy(both), torch.from_numpy(np.concatenate([labels, labels]))).numpy()
        own, other = ws[:2], ws[2:]
        mixed = sampler.seed_ws([3, 4], mix_seeds=9, mix_cutoff=1, labels=["0", "2"])
        np.testing.assert_array_equal(mixed[:, :1], own[:, :1])
        np.testing.assert_array_equal(mixed[:, 1:], other[:, 1:])
        assert not np.array_equal(sampler.seed_ws([3], labels=0), sampler.seed_ws([3], labels=1))
        with pytest.raises(TganError, match="class"):
            sampler.sample([3])  # a conditional model needs its labels


def test_a_style_export_without_its_two_graphs_is_refused_in_one_line(export: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(export, folder)
    (folder / "synthesis.onnx").unlink()
    with pytest.raises(ModelLoadError, match="mapping and synthesis graphs") as info:
        Sampler.open(folder)
    assert "\n" not in str(info.value)

"""Sampler: parity with PyTorch eager on every backend available, seeds, chunking, metadata, bad input."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from _factories import small_config, write_checkpoint
from _runtime_factories import TinyModels, eager, export, shared_tiny_models
from PIL import Image

from tgan_deploy.errors import MissingExtraError, TganError
from tgan_deploy.runtime import (
    BackendUnavailableError,
    InvalidLatentError,
    InvalidSeedError,
    ModelLoadError,
    Sampler,
    latents,
)
from tgan_deploy.runtime.backends import cuda_device_count
from tgan_deploy.runtime.backends.tensorrt import tensorrt_usable
from tgan_deploy.runtime.images import make_grid, save_grid, save_npz, save_pngs, to_uint8

FP32_TOL = 1e-4
NO_GPU = cuda_device_count() == 0


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def cpu_backends(models: TinyModels) -> list[tuple[str, Path]]:
    """(backend, model path) for every backend that runs here."""
    return [("onnxruntime", models.export), ("torch", models.checkpoint)]


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_generate_matches_pytorch_eager(tiny_models: TinyModels, backend: str, batch: int) -> None:
    path = dict(cpu_backends(tiny_models))[backend]
    z = latents(range(100, 100 + batch), 8)
    with Sampler.open(path, backend=backend, device="cpu", max_batch=64) as sampler:
        assert sampler.backend == backend
        out = sampler.generate(z)
    expected = eager(tiny_models.checkpoint, z)
    assert out.dtype == np.float32 and out.shape == (batch, 3, 32, 32)
    assert np.abs(out - expected).max() <= FP32_TOL
    assert np.abs(expected).max() > 0.05  # the model is not trivially constant


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_sample_is_uint8_nhwc_of_the_seeds_latents(tiny_models: TinyModels, backend: str) -> None:
    path = dict(cpu_backends(tiny_models))[backend]
    with Sampler.open(path, backend=backend, device="cpu") as sampler:
        images = sampler.sample(seeds=[3, 4, 5])
        assert np.array_equal(images, sampler.sample(n=3, seed=3))  # n/seed means seeds seed..seed+n-1
    expected = to_uint8(eager(tiny_models.checkpoint, latents([3, 4, 5], 8))).transpose(0, 2, 3, 1)
    assert images.dtype == np.uint8 and images.shape == (3, 32, 32, 3)
    assert np.abs(images.astype(int) - expected).max() <= 1  # rounding ties only


def test_uint8_export_converts_in_graph(tiny_models: TinyModels) -> None:
    z = latents(range(64), 8)
    with Sampler.open(tiny_models.export_uint8) as u8, Sampler.open(tiny_models.export) as f32:
        assert u8.metadata["output_dtype"] == "uint8"
        a, b = u8.sample_latents(z), f32.sample_latents(z)
        assert np.abs(a.astype(int) - b).max() <= 1
        assert (a == b).mean() > 0.99
        assert np.abs(u8.generate(z) - f32.generate(z)).max() <= 1 / 127.5 + 1e-6  # quantised float view


def test_requests_larger_than_max_batch_are_chunked(tiny_models: TinyModels) -> None:
    z = latents(range(23), 8)
    with Sampler.open(tiny_models.export, max_batch=4) as small, Sampler.open(tiny_models.export) as big:
        assert small.max_batch == 4
        assert np.abs(small.generate(z) - big.generate(z)).max() <= FP32_TOL
        assert np.array_equal(small.sample(n=23), big.sample(n=23))


def test_auto_backend_reports_what_really_runs(tiny_models: TinyModels) -> None:
    with Sampler.open(tiny_models.export) as sampler:
        assert sampler.backend == "onnxruntime"
        if NO_GPU:  # onnxruntime-gpu is installed here, but must not be asked for CUDA without a GPU
            assert sampler.providers == ["CPUExecutionProvider"]
    with Sampler.open(tiny_models.checkpoint.parents[1]) as from_run_dir:  # a run directory -> torch
        assert from_run_dir.backend == "torch"


def test_checkpoint_served_by_torch_carries_its_exports_provenance(tiny_models: TinyModels) -> None:
    """One checkpoint -> metadata function: the torch backend records what the export's model.json does (weights
    sha256, step, weights, classes ...); only what the export itself decides (files, time, opset, profile) differs."""
    export_only = {"files", "exported_at", "opset", "batch_profile"}
    with Sampler.open(tiny_models.export) as exported, Sampler.open(tiny_models.checkpoint, backend="torch") as served:
        ours = {k: v for k, v in served.metadata.items() if k not in export_only}
        theirs = {k: v for k, v in exported.metadata.items() if k not in export_only}
    assert ours == theirs
    assert ours["source_checkpoint_sha256"] and ours["source_step"] == 1 and ours["weights"] == "ema"


def test_lone_onnx_file_reads_its_metadata_props(tiny_models: TinyModels, tmp_path: Path) -> None:
    lone = tmp_path / "g.onnx"
    shutil.copy(tiny_models.export / "generator.onnx", lone)
    with Sampler.open(lone) as sampler:
        assert sampler.metadata["latent_dim"] == 8 and sampler.metadata["resolution"] == 32
        assert sampler.metadata["format"] == "tgan-deploy-artefact/1"


def test_toy_model_samples_points(tiny_models: TinyModels) -> None:
    z = latents(range(10), 2)
    for path in (tiny_models.toy_export, tiny_models.toy_checkpoint):
        with Sampler.open(path) as sampler:
            assert sampler.kind == "points"
            points = sampler.sample(n=10)
            assert points.dtype == np.float32 and points.shape == (10, 2)
            assert np.abs(points - eager(tiny_models.toy_checkpoint, z)).max() <= FP32_TOL


def test_sampler_is_thread_safe(tiny_models: TinyModels) -> None:
    with Sampler.open(tiny_models.export, max_batch=8) as sampler:
        expected = {s: sampler.sample(seeds=range(s, s + 1 + s % 11)) for s in range(24)}
        errors: list[str] = []

        def worker(offset: int) -> None:
            for s in range(offset, 24, 4):
                if not np.array_equal(sampler.sample(seeds=range(s, s + 1 + s % 11)), expected[s]):
                    errors.append(f"seed {s}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("z, message", [
    (np.zeros((2, 7), np.float32), "shape"),
    (np.zeros((2, 8), np.float64), "float32"),
    (np.zeros(8, np.float32), "shape"),
    (np.zeros((0, 8), np.float32), "empty"),
    (np.array([[np.nan] * 8], np.float32), "NaN"),
    (np.array([[np.inf] * 8], np.float32), "NaN or Inf"),
    ([[0.0] * 8], "numpy array"),
])
def test_bad_latents_are_rejected(tiny_models: TinyModels, z: object, message: str) -> None:
    with Sampler.open(tiny_models.export) as sampler, pytest.raises(InvalidLatentError, match=message):
        sampler.generate(z)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, error", [
    ({"seeds": [1, -2]}, InvalidSeedError), ({"seeds": [1.5]}, InvalidSeedError), ({"seeds": []}, InvalidSeedError),
    ({"seeds": [True]}, InvalidSeedError), ({"n": 0}, InvalidSeedError), ({"n": 2, "seed": -1}, InvalidSeedError),
    ({}, TganError), ({"seeds": [1], "n": 1}, TganError),
])
def test_bad_seeds_are_rejected(tiny_models: TinyModels, kwargs: dict[str, object], error: type) -> None:
    with Sampler.open(tiny_models.export) as sampler, pytest.raises(error):
        sampler.sample(**kwargs)  # type: ignore[arg-type]


def test_bad_model_files_fail_with_one_line(tiny_models: TinyModels, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Sampler.open(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt" / "generator.onnx"
    corrupt.parent.mkdir()
    corrupt.write_bytes((tiny_models.export / "generator.onnx").read_bytes()[:500])  # truncated
    with pytest.raises(ModelLoadError, match="corrupt") as info:
        Sampler.open(corrupt)
    assert "\n" not in str(info.value)
    bad_json = tmp_path / "badjson"
    shutil.copytree(tiny_models.export, bad_json)
    (bad_json / "model.json").write_text("{not json")
    with pytest.raises(TganError, match=r"model\.json"):
        Sampler.open(bad_json)
    with pytest.raises(ModelLoadError, match="neither an export"):
        Sampler.open(tmp_path)
    with pytest.raises(ModelLoadError, match="not a model file"):
        Sampler.open(tiny_models.export / "model.json")


def test_onnx_without_metadata_is_rejected(tiny_models: TinyModels, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(tiny_models.export / "generator.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelLoadError, match="no tgan-deploy metadata"):
        Sampler.open(tmp_path / "bare.onnx")


def test_backend_and_model_kind_must_agree(tiny_models: TinyModels) -> None:
    with pytest.raises(ModelLoadError, match="torch backend serves checkpoints"):
        Sampler.open(tiny_models.export, backend="torch")
    with pytest.raises(ModelLoadError, match="tgan-export"):
        Sampler.open(tiny_models.checkpoint, backend="onnxruntime")
    with pytest.raises(TganError, match="backend"):
        Sampler.open(tiny_models.export, backend="tflite")
    with pytest.raises(TganError, match="device"):
        Sampler.open(tiny_models.export, device="tpu")
    with pytest.raises(TganError, match="max_batch"):
        Sampler.open(tiny_models.export, max_batch=0)


def test_tensorrt_engine_without_tensorrt_says_what_to_install(tiny_models: TinyModels, tmp_path: Path) -> None:
    folder = tmp_path / "with-engine"
    shutil.copytree(tiny_models.export, folder)
    (folder / "generator.plan").write_bytes(b"not an engine")
    if tensorrt_usable():
        pytest.skip("TensorRT and a GPU are here: test_runtime_gpu.py covers engines")
    with pytest.raises(BackendUnavailableError, match=r"pip install|needs a CUDA GPU") as info:
        Sampler.open(folder / "generator.plan", backend="tensorrt")
    assert isinstance(info.value, MissingExtraError)
    assert "\n" not in str(info.value)
    with Sampler.open(folder) as sampler:  # auto falls back to the ONNX file beside the engine
        assert sampler.backend == "onnxruntime"


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
def test_cuda_without_a_gpu_is_refused_not_silently_cpu(tiny_models: TinyModels) -> None:
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        Sampler.open(tiny_models.export, device="cuda")


def test_closed_sampler_refuses_work(tiny_models: TinyModels) -> None:
    sampler = Sampler.open(tiny_models.export)
    sampler.close()
    sampler.close()  # idempotent
    with pytest.raises(TganError, match="closed"):
        sampler.sample(n=1)


# -- files ----------------------------------------------------------------------------------------
def test_image_writers_round_trip(tiny_models: TinyModels, tmp_path: Path) -> None:
    with Sampler.open(tiny_models.export) as sampler:
        images = sampler.sample(seeds=[5, 9])
    paths = save_pngs(tmp_path / "pngs", images, [5, 9])
    assert [p.name for p in paths] == ["seed-000005.png", "seed-000009.png"]
    assert np.array_equal(np.asarray(Image.open(paths[1])), images[1])
    save_grid(tmp_path / "grid.png", images, columns=2)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png")), make_grid(images, 2))
    assert make_grid(images, 2).shape == (2 + 34, 2 + 2 * 34, 3)
    save_npz(tmp_path / "x.npz", images=images)
    assert np.array_equal(np.load(tmp_path / "x.npz")["images"], images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "pngs", "x.npz"]  # no temp files left


def test_grayscale_export(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "g.pt", small_config(channels=1))
    with Sampler.open(export(ckpt, tmp_path / "export")) as sampler:
        images = sampler.sample(n=2)
    assert images.shape == (2, 32, 32, 1)
    save_pngs(tmp_path / "pngs", images, [0, 1])
    assert np.asarray(Image.open(tmp_path / "pngs" / "seed-000001.png")).shape == (32, 32)


def test_truncation_and_interpolation_through_the_sampler(tiny_models: TinyModels) -> None:
    with Sampler.open(tiny_models.export, backend="onnxruntime", device="cpu") as sampler:
        cut = sampler.sample([3, 4], truncation=0.5)
        np.testing.assert_array_equal(cut, sampler.sample_latents(latents([3, 4], 8, truncation=0.5)))
        assert not np.array_equal(cut, sampler.sample([3, 4]))
        morph = sampler.interpolate(3, 4, 5)
        assert morph.shape == (5, 32, 32, 3)
        np.testing.assert_array_equal(morph[0], sampler.sample([3])[0])
        np.testing.assert_array_equal(morph[-1], sampler.sample([4])[0])

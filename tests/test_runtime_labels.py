"""Class-conditional models downstream of the export: one label contract in the Sampler, the batcher, tgan-sample
and tgan-serve (index or class name; the same seed is the same z under every label; clear refusals)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from _runtime_factories import COND_CLASSES, TinyModels, eager, shared_tiny_models
from _serve import running_server
from _subprocess import kill_9_mid_bulk_run, repo_env
from PIL import Image

from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.runtime import BatchingSampler, InvalidLabelError, Sampler, latents, resolve_labels
from tgan_deploy.runtime.images import to_uint8

FP32_TOL = 1e-4
COND = ArtefactMetadata(kind="image", latent_dim=8, resolution=32, channels=3, num_classes=3, classes=COND_CLASSES)
DIGITS = ArtefactMetadata(kind="image", latent_dim=8, resolution=32, channels=1, num_classes=10,
                          classes=[str(d) for d in range(10)])
PLAIN = ArtefactMetadata(kind="image", latent_dim=8, resolution=32, channels=3)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def test_labels_resolve_by_index_or_name() -> None:
    assert resolve_labels(COND, "seven", 3).tolist() == [2, 2, 2]  # one label for every row
    assert resolve_labels(COND, ["dog", 0, "2"], 3).tolist() == [1, 0, 2]  # one per row; "2": no class so named
    assert resolve_labels(COND, np.array([2, 1]), 2).tolist() == [2, 1]
    assert resolve_labels(DIGITS, "7", 1).tolist() == [7]  # the digit classes are named "0".."9"
    assert resolve_labels(PLAIN, None, 4) is None


@pytest.mark.parametrize(("meta", "labels", "message"), [
    (COND, None, "class-conditional: give a label, one of cat, dog, seven"),
    (PLAIN, 1, "unconditional"),
    (COND, "horse", "unknown class 'horse': one of cat, dog, seven"),
    (COND, 3, "label 3 is out of range"),
    (COND, np.array([0, 5, 1]), "label 5 is out of range"),
    (COND, -1, "out of range"),
    (COND, "-1", "label -1 is out of range"),  # a negative index as text, e.g. ?label=-1
    (COND, True, "must be a class index or name"),
    (COND, [0, 1], "got 2 labels for 3 images"),
])
def test_bad_labels_are_refused_naming_the_classes(meta: ArtefactMetadata, labels: object, message: str) -> None:
    with pytest.raises(InvalidLabelError, match=message):
        resolve_labels(meta, labels, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_conditional_sampler_matches_pytorch_eager(tiny_models: TinyModels, backend: str) -> None:
    path = tiny_models.cond_export if backend == "onnxruntime" else tiny_models.cond_checkpoint
    z, labels = latents(range(6), 8), np.array([0, 1, 2, 2, 1, 0])
    with Sampler.open(path, backend=backend, device="cpu") as sampler:
        assert sampler.num_classes == 3 and sampler.classes == COND_CLASSES
        out = sampler.generate(z, labels)
        by_name = sampler.sample(range(6), labels=[COND_CLASSES[i] for i in labels])
    expected = eager(tiny_models.cond_checkpoint, z, labels)
    assert np.abs(out - expected).max() <= FP32_TOL
    assert np.abs(by_name.astype(int) - to_uint8(expected).transpose(0, 2, 3, 1)).max() <= 1  # rounding ties only


def test_only_the_label_changes_and_the_seed_keeps_its_latent(tiny_models: TinyModels) -> None:
    with Sampler.open(tiny_models.cond_export) as sampler:
        cats, dogs = sampler.sample([4, 5], labels="cat"), sampler.sample([4, 5], labels=1)
        assert not np.array_equal(cats, dogs)
        assert np.array_equal(dogs, sampler.sample([4, 5], labels="dog"))
        assert np.array_equal(cats[1], sampler.sample([5], labels=0)[0])  # a row does not depend on its batch
        z = latents([4], 8)
        assert np.array_equal(sampler.sample_latents(z, "dog"), dogs[:1])  # (seed, label) -> latents(seed)
        frames = sampler.interpolate(4, 5, 3, label="seven")
        assert np.array_equal(frames[0], sampler.sample([4], labels="seven")[0])
        with pytest.raises(InvalidLabelError, match="give a label"):
            sampler.sample([1])
    with Sampler.open(tiny_models.export) as plain, pytest.raises(InvalidLabelError, match="unconditional"):
        plain.sample([1], labels=0)


def test_batching_sampler_batches_mixed_labels(tiny_models: TinyModels) -> None:
    with Sampler.open(tiny_models.cond_export) as sampler, BatchingSampler(sampler, max_delay_ms=50) as batcher:
        futures = [batcher.submit([s, s + 10], labels=COND_CLASSES[s % 3]) for s in range(6)]
        results = [f.result(30) for f in futures]
        with pytest.raises(InvalidLabelError):
            batcher.submit([1], labels="horse")  # refused in the caller's thread, never joins a batch
        assert batcher.images_run == 12 and batcher.batches_run < 6  # the requests really shared batches
        for s, images in enumerate(results):
            assert np.array_equal(images, sampler.sample([s, s + 10], labels=s % 3))


def tgan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgan_deploy", *args], capture_output=True, text=True,
                          env=repo_env(), cwd=cwd, timeout=120)


def test_tgan_sample_label_and_class_grid(tiny_models: TinyModels, tmp_path: Path) -> None:
    done = tgan("sample", str(tiny_models.cond_export), "--n", "4", "--label", "seven", "--out", "sevens.npz",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "sevens.npz") as npz, Sampler.open(tiny_models.cond_export) as sampler:
        assert npz["labels"].tolist() == [2] * 4
        assert np.array_equal(npz["images"], sampler.sample(range(4), labels="seven"))
        grid_done = tgan("sample", str(tiny_models.cond_export), "--n", "5", "--out", "grid.png", cwd=tmp_path)
        assert grid_done.returncode == 0, grid_done.stderr
        grid = np.asarray(Image.open(tmp_path / "grid.png"))
        rows = {r: sampler.sample(range(5), labels=r) for r in range(3)}
    pad = 2  # make_grid's padding: row r, column c starts at pad + (32 + pad) * index
    assert grid.shape[:2] == (pad + 3 * (32 + pad), pad + 5 * (32 + pad))
    for r, images in rows.items():  # rows are classes, columns seeds
        for c in range(5):
            top, left = pad + r * (32 + pad), pad + c * (32 + pad)
            assert np.array_equal(grid[top:top + 32, left:left + 32], images[c])


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "horse"], "error: unknown class 'horse': one of cat, dog, seven"),
    (["--label", "9"], "error: label 9 is out of range"),
])
def test_tgan_sample_bad_label_is_one_line_and_no_file(tiny_models: TinyModels, tmp_path: Path, args: list[str],
                                                       message: str) -> None:
    done = tgan("sample", str(tiny_models.cond_export), *args, "--out", "x.npz", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith(message) and done.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_tgan_sample_label_on_an_unconditional_model(tiny_models: TinyModels, tmp_path: Path) -> None:
    done = tgan("sample", str(tiny_models.export), "--label", "1", "--out", "x.png", cwd=tmp_path)
    assert done.returncode == 2 and "unconditional" in done.stderr and not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def server(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> object:
    log = tmp_path_factory.mktemp("serve-labels") / "serve.log"
    with running_server(tiny_models.cond_export, "--name", "cond", log=log) as (url, _):
        yield url


def test_serve_png_label_by_name_or_index_with_the_label_in_the_etag(server: str, tiny_models: TinyModels) -> None:
    by_name = httpx.get(f"{server}/v1/models/cond/images/3.png?label=dog", timeout=30)
    by_index = httpx.get(f"{server}/v1/models/cond/images/3.png?label=1", timeout=30)
    other = httpx.get(f"{server}/v1/models/cond/images/3.png?label=seven", timeout=30)
    assert by_name.status_code == by_index.status_code == other.status_code == 200
    assert by_name.content == by_index.content and by_name.headers["etag"] == by_index.headers["etag"]
    assert other.headers["etag"] != by_name.headers["etag"] and other.content != by_name.content
    with Sampler.open(tiny_models.cond_export) as sampler:
        expected = sampler.sample([3], labels="dog")[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(by_name.content))), expected)
    for query, status in (("", 400), ("?label=horse", 400), ("?label=7", 400)):
        refused = httpx.get(f"{server}/v1/models/cond/images/3.png{query}", timeout=30)
        assert refused.status_code == status and "cat, dog, seven" in refused.text


def test_serve_oip_takes_an_optional_label_input(server: str, tiny_models: TinyModels) -> None:
    meta = httpx.get(f"{server}/v2/models/cond", timeout=30).json()
    assert {"name": "label", "datatype": "INT64", "shape": [-1]} in meta["inputs"]
    assert meta["parameters"]["classes"] == COND_CLASSES
    body = {"inputs": [{"name": "seed", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]},
                       {"name": "label", "datatype": "INT64", "shape": [3], "data": [2, 0, 1]}]}
    answer = httpx.post(f"{server}/v2/models/cond/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    images = np.asarray(output["data"], np.uint8).reshape(output["shape"])
    with Sampler.open(tiny_models.cond_export) as sampler:
        assert np.array_equal(images, sampler.sample([1, 2, 3], labels=[2, 0, 1]))
    body["inputs"][1]["data"] = [2, 0, 5]
    refused = httpx.post(f"{server}/v2/models/cond/infer", json=body, timeout=30)
    assert refused.status_code == 400 and "label 5 is out of range" in refused.text


def test_bulk_per_class_writes_every_class_in_its_directory(tiny_models: TinyModels, tmp_path: Path) -> None:
    done = tgan("sample", str(tiny_models.cond_export), "--per-class", "3", "--seed", "5", "--out", "png",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "of 3 classes" in done.stdout
    record = json.loads((tmp_path / "png" / "classes.json").read_text())
    assert [(c["label"], c["class"], c["dir"]) for c in record["classes"]] == [
        (0, "cat", "cat"), (1, "dog", "dog"), (2, "seven", "seven")]
    with Sampler.open(tiny_models.cond_export) as sampler:
        for index, name in enumerate(COND_CLASSES):
            job = json.loads((tmp_path / "png" / name / "manifest.json").read_text())["job"]
            assert (job["label"], job["class"]) == (index, name)
            files = sorted(p.name for p in (tmp_path / "png" / name).glob("seed-*.png"))
            assert files == ["seed-000005.png", "seed-000006.png", "seed-000007.png"]
            expected = sampler.sample([5, 6, 7], labels=index)
            for image, file in zip(expected, files, strict=True):
                assert np.array_equal(np.asarray(Image.open(tmp_path / "png" / name / file)), image)
    again = tgan("sample", str(tiny_models.cond_export), "--per-class", "3", "--seed", "5", "--out", "png",
                 cwd=tmp_path)
    assert again.returncode == 0 and "wrote 0 images of 3 classes" in again.stdout  # complete: nothing rewritten


def test_bulk_per_class_tar_and_npy_carry_labels_unique_keys_and_verify_across_shards(tiny_models: TinyModels,
                                                                                      tmp_path: Path) -> None:
    for shard in ("0/2", "1/2"):
        done = tgan("sample", str(tiny_models.cond_export), "--per-class", "4", "--format", "tar", "--shard-size", "2",
                    "--shard", shard, "--out", f"tar-{shard[0]}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "tar-0" / "dog" / "shard-000000.tar") as tar:
        names = tar.getnames()
        assert names[:3] == ["0001-000000.png", "0001-000000.json", "0001-000000.cls"]
        assert tar.extractfile("0001-000000.cls").read() == b"1"  # type: ignore[union-attr]
        assert json.loads(tar.extractfile("0001-000000.json").read())["class"] == "dog"  # type: ignore[union-attr]
    # the whole tree (both machines' shards, every class) read as one WebDataset: each sample's key is unique
    keys = []
    for shard in sorted(tmp_path.glob("tar-*/*/shard-*.tar")):
        with tarfile.open(shard) as tar:  # WebDataset's key: a member's name up to its first dot
            keys += [name.split(".", 1)[0] for name in tar.getnames() if name.endswith(".png")]
    assert len(keys) == 3 * 4 and len(set(keys)) == len(keys), keys
    verified = tgan("sample", "--verify", "tar-0", "tar-1", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count("complete, no overlap") == 3  # one union per class
    alone = tgan("sample", "--verify", "tar-0", cwd=tmp_path)
    assert alone.returncode != 0 and "pass every shard's directory" in alone.stderr
    done = tgan("sample", str(tiny_models.cond_export), "--per-class", "2", "--format", "npy", "--out", "npy",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "npy" / "seven" / "labels.npy").tolist() == [2, 2]
    assert tgan("sample", "--verify", "npy", cwd=tmp_path).returncode == 0


def test_bulk_of_a_conditional_model_needs_its_classes(tiny_models: TinyModels, tmp_path: Path) -> None:
    done = tgan("sample", str(tiny_models.cond_export), "--n", "4", "--out", "dir", cwd=tmp_path)
    assert done.returncode == 2 and "add --per-class N" in done.stderr and done.stderr.count("\n") == 1
    plain = tgan("sample", str(tiny_models.export), "--per-class", "2", "--out", "dir", cwd=tmp_path)
    assert plain.returncode == 2 and "needs a class-conditional model" in plain.stderr
    assert not (tmp_path / "dir").exists()
    one = tgan("sample", str(tiny_models.cond_export), "--n", "2", "--label", "dog", "--format", "npy", "--out", "one",
               cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert np.load(tmp_path / "one" / "labels.npy").tolist() == [1, 1]


def int64_input(name: str, values: list[int]) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(values)], "INT64")
    tensor.set_data_from_numpy(np.asarray(values, np.int64))  # default settings: the binary tensor extension
    return tensor


def test_tritonclient_with_default_settings_sends_the_label(server: str, tiny_models: TinyModels) -> None:
    client = triton.InferenceServerClient(server.removeprefix("http://"))
    meta = client.get_model_metadata("cond")
    assert [i["name"] for i in meta["inputs"]] == ["seed", "z", "label"]
    per_row = client.infer("cond", [int64_input("seed", [6, 7]), int64_input("label", [1, 2])]).as_numpy("image")
    one_for_all = client.infer("cond", [int64_input("seed", [6, 7]), int64_input("label", [0])]).as_numpy("image")
    z = latents([6, 7], 8)
    z_tensor = triton.InferInput("z", list(z.shape), "FP32")
    z_tensor.set_data_from_numpy(z)
    by_latent = client.infer("cond", [z_tensor, int64_input("label", [1, 2])]).as_numpy("image")
    with Sampler.open(tiny_models.cond_export) as sampler:
        assert np.array_equal(per_row, sampler.sample([6, 7], labels=[1, 2]))
        assert np.array_equal(one_for_all, sampler.sample([6, 7], labels="cat"))
    assert np.array_equal(by_latent, per_row)  # seed 6 under label 1 is latents(6) under label 1, on any input
    png = httpx.get(f"{server}/v1/models/cond/images/7.png?label=seven", timeout=30)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), per_row[1])  # same bytes on both routes
    with pytest.raises(triton.InferenceServerException, match="give a label"):
        client.infer("cond", [int64_input("seed", [6])])


def test_bulk_per_class_kill_9_in_the_second_class_then_resume_is_byte_identical(tiny_models: TinyModels,
                                                                                  tmp_path: Path) -> None:
    def args(out: str) -> list[str]:
        return ["sample", str(tiny_models.cond_export), "--per-class", "1500", "--shard-size", "100",
                "--format", "tar", "--out", out]

    assert tgan(*args("reference"), cwd=tmp_path).returncode == 0
    # killed once the second class has finished two parts
    kill_9_mid_bulk_run(args("out"), tmp_path / "out" / "dog" / ".tgan-progress.jsonl", cwd=tmp_path)
    out = tmp_path / "out"
    assert (out / "cat" / "manifest.json").exists()
    assert not (out / "dog" / "manifest.json").exists() and not (out / "classes.json").exists()
    refused = tgan(*args("out"), cwd=tmp_path)
    assert refused.returncode == 2 and "--resume" in refused.stderr and refused.stderr.count("\n") == 1
    resumed = tgan(*args("out"), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert 0 < int(resumed.stdout.split()[1]) < 3000  # "wrote W images of 3 classes ...": only the unfinished ones
    files = {p.relative_to(tmp_path / "reference"): p.read_bytes()
             for p in sorted((tmp_path / "reference").rglob("*")) if p.is_file()}
    assert files == {p.relative_to(tmp_path / "out"): p.read_bytes()
                     for p in sorted((tmp_path / "out").rglob("*")) if p.is_file()}
    assert tgan("sample", "--verify", "out", cwd=tmp_path).returncode == 0

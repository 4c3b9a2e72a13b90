"""Ray Data path on a real local Ray cluster (ray.init(num_cpus=2), one actor: a CPU stays free for the read
tasks): the rows equal Sampler.sample for the same seeds, and Ray's own WebDataset reader reads our tar shards."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _runtime_factories import TinyModels, shared_tiny_models
from _subprocess import BLOCK_TORCH, repo_env
from PIL import Image

from tgan_deploy.errors import TganError
from tgan_deploy.runtime import Sampler
from tgan_deploy.runtime.bulk import BulkOptions, SeedPlan, run_bulk

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

from tgan_deploy.runtime.raydata import sample_dataset, to_webdataset  # noqa: E402


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def cluster() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_ray_path_runs_with_torch_blocked(tiny_models: TinyModels) -> None:
    """The driver never imports torch (its own cluster, before the module's one starts)."""
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import ray
        from tgan_deploy.runtime.raydata import sample_dataset
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        rows = sample_dataset({str(tiny_models.export)!r}, n=8).take_all()
        assert sorted(int(r["seed"]) for r in rows) == list(range(8)), rows
        assert sys.modules["torch"] is None
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=repo_env(), timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]


def rows_by_seed(ds: object) -> tuple[np.ndarray, np.ndarray]:
    rows = sorted(ds.take_all(), key=lambda r: int(r["seed"]))  # type: ignore[attr-defined]
    return np.array([int(r["seed"]) for r in rows]), np.stack([r["image"] for r in rows])


def test_dataset_images_equal_the_samplers(cluster: None, tiny_models: TinyModels) -> None:
    seeds, images = rows_by_seed(sample_dataset(tiny_models.export, n=70, seed=5, batch_size=16))
    explicit_seeds, explicit = rows_by_seed(sample_dataset(tiny_models.export, seeds=[3, 99, 17], truncation=0.5))
    with Sampler.open(tiny_models.export) as sampler:
        assert list(seeds) == list(range(5, 75))
        assert images.dtype == np.uint8 and np.array_equal(images, sampler.sample(range(5, 75)))
        assert list(explicit_seeds) == [3, 17, 99]
        assert np.array_equal(explicit, sampler.sample([3, 17, 99], truncation=0.5))


def test_a_pool_that_takes_every_cpu_is_refused(cluster: None, tiny_models: TinyModels) -> None:
    with pytest.raises(TganError, match="take all 2 CPUs"):
        sample_dataset(tiny_models.export, n=4, concurrency=2)


def test_rays_webdataset_reader_reads_our_tar_shards(cluster: None, tiny_models: TinyModels, tmp_path: Path) -> None:
    with Sampler.open(tiny_models.export) as sampler:
        run_bulk(sampler, tiny_models.export, SeedPlan.from_options(n=12, seed=0, seeds=None, part_size=5),
                 tmp_path, BulkOptions("tar"))
        expected = sampler.sample(range(12))
    shards = sorted(str(p) for p in tmp_path.glob("*.tar"))
    rows = sorted(ray.data.read_webdataset(shards).take_all(), key=lambda r: r["__key__"])
    assert [r["__key__"] for r in rows] == [f"{s:06d}" for s in range(12)]
    assert np.array_equal(np.stack([np.asarray(r["png"]) for r in rows]), expected)
    assert [json.loads(r["json"]) if isinstance(r["json"], (str, bytes)) else r["json"] for r in rows][3]["seed"] == 3


def test_rays_webdataset_writer_writes_our_sample_layout(cluster: None, tiny_models: TinyModels,
                                                          tmp_path: Path) -> None:
    to_webdataset(sample_dataset(tiny_models.export, n=10, seed=20)).write_webdataset(str(tmp_path))
    members: dict[str, bytes] = {}
    for shard in tmp_path.glob("*.tar"):
        with tarfile.open(shard) as tar:
            members.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})  # type: ignore[union-attr]
    assert sorted(members) == sorted(f"{s:06d}.{ext}" for s in range(20, 30) for ext in ("png", "json"))
    assert json.loads(members["000023.json"]) == {"seed": 23}
    with Sampler.open(tiny_models.export) as sampler:
        expected = sampler.sample(range(20, 30))
    got = np.stack([np.asarray(Image.open(io.BytesIO(members[f"{s:06d}.png"]))) for s in range(20, 30)])
    assert np.array_equal(got, expected)


def test_rows_of_a_conditional_model_carry_their_label(cluster: None, tiny_models: TinyModels) -> None:
    one = sorted(sample_dataset(tiny_models.cond_export, n=4, seed=2, labels="dog").take_all(),
                 key=lambda r: int(r["seed"]))
    per_seed = sorted(sample_dataset(tiny_models.cond_export, seeds=[9, 3], labels=["seven", 0]).take_all(),
                      key=lambda r: int(r["seed"]))
    with Sampler.open(tiny_models.cond_export) as sampler:
        assert [int(r["label"]) for r in one] == [1] * 4
        assert np.array_equal(np.stack([r["image"] for r in one]), sampler.sample(range(2, 6), labels="dog"))
        assert [(int(r["seed"]), int(r["label"])) for r in per_seed] == [(3, 0), (9, 2)]
        assert np.array_equal(np.stack([r["image"] for r in per_seed]), sampler.sample([3, 9], labels=[0, 2]))
    with pytest.raises(TganError, match="one label per row needs seeds"):
        sample_dataset(tiny_models.cond_export, n=2, labels=[0, 1])
    # refused on the driver, before any actor starts
    with pytest.raises(TganError, match="class-conditional: give a label"):
        sample_dataset(tiny_models.cond_export, n=2)
    with pytest.raises(TganError, match="unknown class 'horse'"):
        sample_dataset(tiny_models.cond_export, n=2, labels="horse")
    with pytest.raises(TganError, match="unconditional"):
        sample_dataset(tiny_models.export, n=2, labels=0)


def test_rays_webdataset_writer_adds_the_class_of_a_conditional_model(cluster: None, tiny_models: TinyModels,
                                                                      tmp_path: Path) -> None:
    to_webdataset(sample_dataset(tiny_models.cond_export, seeds=[4, 5], labels=["dog", "seven"])
                  ).write_webdataset(str(tmp_path))
    members: dict[str, bytes] = {}
    for shard in tmp_path.glob("*.tar"):
        with tarfile.open(shard) as tar:
            members.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})  # type: ignore[union-attr]
    keys = ("0001-000004", "0002-000005")  # class-seed, as the bulk writer's keys of labelled samples
    assert sorted(members) == sorted(f"{key}.{ext}" for key in keys for ext in ("png", "json", "cls"))
    assert (members["0001-000004.cls"], members["0002-000005.cls"]) == (b"1", b"2")  # as the bulk writer's
    with Sampler.open(tiny_models.cond_export) as sampler:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(members["0002-000005.png"]))),
                              sampler.sample([5], labels="seven")[0])

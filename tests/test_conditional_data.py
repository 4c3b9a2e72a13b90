"""Labels from the data, no JSON: builtins, class folders, .npz `labels`/`classes`; the (images, labels) view;
what --conditional does with labelled and unlabelled data (train/conditional.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tgan_deploy.config import DataConfig, ModelConfig, TrainConfig
from tgan_deploy.data import load_dataset, make_loader
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.errors import ConfigError, DataError
from tgan_deploy.train import conditional

IMAGES = ModelConfig(resolution=32, channels=1)
POINTS = ModelConfig(arch="mlp")


@pytest.mark.parametrize(("source", "count"), [("builtin:mnist5k", 500), ("builtin:digits", None)])
def test_builtin_digits_are_labelled_by_digit(source: str, count: int | None) -> None:
    data = load_dataset(source, IMAGES, DataConfig())
    assert data.classes == [str(d) for d in range(10)] and data.labels is not None
    counts = np.bincount(data.labels, minlength=10)
    assert counts.min() > 150 and (count is None or set(counts) == {count})


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_points_are_labelled_by_their_component(name: str) -> None:
    data = load_dataset(f"builtin:{name}", POINTS, DataConfig())
    centres = MIXTURES[name].centres
    assert data.classes == [str(k) for k in range(len(centres))] and data.labels is not None
    x = data.array[:5000]
    nearest = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(nearest, data.labels[:5000])


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


@pytest.mark.parametrize("cache", ["disk", "none"])
def test_class_folders_become_sorted_classes(tmp_path: Path, cache: str) -> None:
    root = tmp_path / "data"
    for name, value in (("zebra", 10), ("ant", 200)):
        for i in range(3):
            _png(root / name / ("deep" if i else "") / f"{i}.png", value)
    (root / "ant" / "0-broken.png").write_bytes(b"not an image")  # skipped: its label must go too
    cfg = DataConfig(cache_dir=str(tmp_path / "cache") if cache == "disk" else "none", max_bad_fraction=0.5)
    for _ in range(2):  # decode, then (disk) the cached array
        with pytest.warns(UserWarning, match="skipped 1"):
            data = load_dataset(str(root), IMAGES, cfg)
        assert data.classes == ["ant", "zebra"] and data.skipped == 1
        assert data.labels is not None and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
        assert data.array[:, 0, 0, 0].tolist() == [200] * 3 + [10] * 3  # each image kept its own label
    images, labels = next(iter(make_loader(data.labelled(), 6, seed=0)))
    assert images.shape == (6, 1, 32, 32) and labels.dtype == torch.int64
    assert torch.equal((images[:, 0, 0, 0] < 0).long(), labels)  # zebra (10) is dark, ant (200) light


def test_folder_without_class_layout_has_no_labels(tmp_path: Path) -> None:
    _png(tmp_path / "only" / "a.png", 1)
    _png(tmp_path / "only" / "b.png", 2)  # one sub-folder (CelebA's layout): not classes
    assert load_dataset(str(tmp_path), IMAGES, DataConfig(cache_dir="none")).labels is None
    _png(tmp_path / "other" / "c.png", 3)
    _png(tmp_path / "loose.png", 4)  # an image beside the class folders: not a class layout
    assert load_dataset(str(tmp_path), IMAGES, DataConfig(cache_dir="none")).labels is None


def test_npz_labels_and_classes(tmp_path: Path) -> None:
    images = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "ints.npz", images=images, labels=np.array([1, 0, 2, 1]), classes=np.array(["a", "b", "c"]))
    data = load_dataset(str(tmp_path / "ints.npz"), IMAGES, DataConfig())
    assert data.classes == ["a", "b", "c"] and data.labels is not None and data.labels.tolist() == [1, 0, 2, 1]
    np.savez(tmp_path / "names.npz", images=images, labels=np.array(["dog", "cat", "dog", "emu"]))
    data = load_dataset(str(tmp_path / "names.npz"), IMAGES, DataConfig())
    assert data.classes == ["cat", "dog", "emu"] and data.labels is not None and data.labels.tolist() == [1, 0, 1, 2]
    np.savez(tmp_path / "plain.npz", points=np.zeros((5, 2)), labels=np.array([0, 1, 1, 0, 1]))
    data = load_dataset(str(tmp_path / "plain.npz"), POINTS, DataConfig())
    assert data.kind == "points" and data.classes == ["0", "1"]


@pytest.mark.parametrize(("arrays", "message"), [
    ({"labels": np.array([0, 1, 3, 1]), "classes": np.array(["a", "b"])}, r"must lie in 0\.\.1"),
    ({"labels": np.array([-1, 0, 1, 1])}, r"must lie in 0\.\.1"),
    ({"labels": np.array([0, 1, 1])}, r"one label per item \(4,\)"),
    ({"labels": np.array([0.5, 1, 1, 0])}, "must be integers"),
    ({"classes": np.array(["a", "b"])}, "'classes' but no 'labels'"),
    ({"labels": np.array([0, 1, 1, 0]), "classes": np.array(["a", "a"])}, "distinct non-empty"),
])
def test_bad_npz_labels_name_the_problem(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "bad.npz", images=np.zeros((4, 8, 8), np.uint8), **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "bad.npz"), IMAGES, DataConfig())


def test_conditional_takes_the_classes_from_the_data_or_explains() -> None:
    data = load_dataset("builtin:ring8", POINTS, DataConfig())
    said: list[str] = []
    cfg = TrainConfig()
    conditional.configure(cfg, data, None, said.append)
    assert cfg.model.num_classes == 0
    assert said == ["note: builtin:ring8 has 8 classes (0, 1, 2, 3, 4, ... 3 more); pass --conditional to train "
                    "a class-conditional model"]
    cfg.data.conditional = True
    conditional.configure(cfg, data, None, said.append)
    assert cfg.model.num_classes == 8 and cfg.model.classes == data.classes and len(said) == 1
    cfg.model.classes = ["a"] * 8  # a resumed run whose data changed
    with pytest.raises(DataError, match="this run was configured with"):
        conditional.configure(cfg, data, None, said.append)
    off = TrainConfig()
    off.model.num_classes = 3
    with pytest.raises(ConfigError, match=r"data\.conditional is off"):
        conditional.configure(off, data, None, said.append)

"""`load_dataset`: any supported source -> one in-memory (or memory-mapped) dataset of ready tensors.

Every source is decoded, converted and resized ONCE when loaded (image folders: cached on disk, see
folder.py), and kept as uint8 [N, C, R, R] (or float32 [N, 2] points). A batch is then one fancy-index and
one uint8 -> float conversion: no per-step JPEG decoding competing with the GPU for a 2-core CPU.
"""

from __future__ import annotations

from pathlib import Path

from tgan_deploy.config import DataConfig, ModelConfig
from tgan_deploy.data import builtins
from tgan_deploy.data.folder import load_folder
from tgan_deploy.data.images import fit_array
from tgan_deploy.data.npz import load_npz
from tgan_deploy.data.training_data import Kind, TrainingData
from tgan_deploy.errors import DataError


def dataset_kind(source: str) -> Kind | None:
    """"image" or "points" from the source string alone; None for an .npz file (its array decides)."""
    if source.startswith(builtins.PREFIX):
        return builtins.BUILTINS[builtins.builtin_name(source)]  # type: ignore[return-value]
    return None if source.lower().endswith(".npz") else "image"


def load_dataset(source: str, model_cfg: ModelConfig, data_cfg: DataConfig) -> TrainingData:
    """Load `source` (an image folder, an .npz file, or builtin:{mnist5k,digits,ring8,grid25}); only
    data_cfg.limit of its items if that is set (TrainingData.subset).

    Images come out as model_cfg.channels x model_cfg.resolution^2 in [-1, 1]; points as [2]. A source whose
    kind does not fit model_cfg.arch ("mlp" for points, "dcgan" for images) fails with the fix.
    """
    return _load(source, model_cfg, data_cfg).subset(data_cfg.limit)


def _load(source: str, model_cfg: ModelConfig, data_cfg: DataConfig) -> TrainingData:
    if source.startswith(builtins.PREFIX):
        check_arch(source, builtins.BUILTINS[builtins.builtin_name(source)], model_cfg)
        return _load_builtin(source, model_cfg)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(_missing_source_message(source))
    if path.is_dir():
        check_arch(source, "image", model_cfg)  # before any slow decoding
        return load_folder(path, model_cfg, data_cfg)
    if path.suffix.lower() != ".npz":
        raise DataError(f"data source {source} is a file but not an .npz: give an image folder, "
                        f"an .npz file or a builtin:NAME")
    data = load_npz(path, model_cfg)
    check_arch(source, data.kind, model_cfg)
    return data


def check_arch(source: str, kind: str, model_cfg: ModelConfig) -> None:
    """Images need model.arch dcgan, 2-D points model.arch mlp: say which setting fixes a mismatch."""
    if kind == "points" and model_cfg.arch != "mlp":
        raise DataError(f"{source} is 2-D point data, but model.arch is {model_cfg.arch!r}: "
                        f"set model.arch mlp, or leave model.arch unset (tgan-train's 2-D preset sets it)")
    if kind == "image" and model_cfg.arch == "mlp":
        raise DataError(f"{source} is image data, but model.arch is 'mlp' (2-D points only): "
                        f"set model.arch dcgan, or use builtin:ring8 / builtin:grid25")
    if kind == "image" and model_cfg.resolution <= 0:
        raise DataError(f"model.resolution must be positive, got {model_cfg.resolution}")


def _load_builtin(source: str, model_cfg: ModelConfig) -> TrainingData:
    name = builtins.builtin_name(source)
    labels, classes = builtins.builtin_labels(name), builtins.builtin_classes(name)
    if builtins.BUILTINS[name] == "points":
        return TrainingData(builtins.toy_points(name), "points", source, labels=labels, classes=classes)
    images = builtins.builtin_images(name)[:, None]  # [N, 1, H, W]
    return TrainingData(fit_array(images, model_cfg.resolution, model_cfg.channels), "image", source,
                        labels=labels, classes=classes)


def _missing_source_message(source: str) -> str:
    if source in builtins.BUILTINS:
        return f"data source {source!r} does not exist (did you mean {builtins.PREFIX}{source}?)"
    return (f"data source {source} does not exist: give an image folder, an .npz file, or one of "
            f"{', '.join(builtins.PREFIX + n for n in builtins.BUILTINS)}")

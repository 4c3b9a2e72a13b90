"""Image folders: find images recursively, decode + resize each once, cache the result on disk."""

from __future__ import annotations

from pathlib import Path

from tgan_deploy.config import DataConfig, ModelConfig
from tgan_deploy.data.dataset import TrainingData

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def load_folder(path: Path, model_cfg: ModelConfig, data_cfg: DataConfig) -> TrainingData:
    raise NotImplementedError  # filled in next

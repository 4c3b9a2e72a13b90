"""Sampling from exported generators: seeds -> latents -> backend -> images.

Light by design: importing this package and serving an ONNX model needs numpy, onnxruntime, click and
Pillow only; torch and TensorRT are imported by their own backends when those are opened.
"""

from tgan_deploy.runtime.batching import BatchingSampler
from tgan_deploy.runtime.errors import (
    BackendUnavailableError,
    BatcherClosedError,
    EngineMismatchError,
    InvalidLabelError,
    InvalidLatentError,
    InvalidLatentOptionError,
    InvalidSeedError,
    ModelLoadError,
    QueueFullError,
)
from tgan_deploy.runtime.labels import resolve_labels
from tgan_deploy.runtime.latents import interpolate_latents, latent, latents
from tgan_deploy.runtime.sampler import Sampler

__all__ = [
    "BackendUnavailableError",
    "BatcherClosedError",
    "BatchingSampler",
    "EngineMismatchError",
    "InvalidLabelError",
    "InvalidLatentError",
    "InvalidLatentOptionError",
    "InvalidSeedError",
    "ModelLoadError",
    "QueueFullError",
    "Sampler",
    "interpolate_latents",
    "latent",
    "latents",
    "resolve_labels",
]

"""Errors the runtime raises: each a `TganError` whose one-line message names the problem and the fix."""

from __future__ import annotations

from tgan_deploy.errors import MissingExtraError, TganError
from tgan_deploy.runtime.latents import InvalidLatentOptionError, InvalidSeedError


class ModelLoadError(TganError):
    """A model file is missing, unreadable, corrupt, or not a tgan-deploy export."""


class EngineMismatchError(ModelLoadError):
    """A TensorRT engine was built for another TensorRT version or another GPU."""


class InvalidLatentError(TganError, ValueError):
    """Latents of the wrong shape, dtype, or with NaN/Inf values, or an empty batch."""


class InvalidLabelError(TganError, ValueError):
    """A class label the model cannot take: unknown name, index out of range, or a label where none fits."""


class BackendUnavailableError(MissingExtraError):
    """The requested backend is not installed or cannot run here (no GPU); the message says what to install."""


class BatcherClosedError(TganError, RuntimeError):
    """A request was submitted to, or was still pending in, a BatchingSampler that was closed."""


class QueueFullError(TganError, RuntimeError):
    """A BatchingSampler's queue stayed full for the whole submit timeout (back-pressure)."""


__all__ = [
    "BackendUnavailableError",
    "BatcherClosedError",
    "EngineMismatchError",
    "InvalidLabelError",
    "InvalidLatentError",
    "InvalidLatentOptionError",
    "InvalidSeedError",
    "ModelLoadError",
    "QueueFullError",
]

"""What this machine can run: a CUDA GPU, real TensorRT. Shared by conftest's markers and tests that need the
opposite (a check that only makes sense where TensorRT is missing)."""

from __future__ import annotations

import functools


@functools.cache
def has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def has_tensorrt() -> bool:
    try:
        import tensorrt
    except Exception:  # ImportError, or the bindings without their CUDA libraries
        return False
    # tensorrt-stubs installs an importable, empty `tensorrt/` folder: only the real library has Builder.
    return hasattr(tensorrt, "Builder") and has_gpu()

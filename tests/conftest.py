"""Shared pytest setup: a fixed torch seed, and skips for tests that need a GPU or TensorRT."""

from __future__ import annotations

import functools

import pytest


@functools.cache
def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def _has_tensorrt() -> bool:
    try:
        import tensorrt
    except Exception:  # ImportError, or the bindings without their CUDA libraries
        return False
    # tensorrt-stubs installs an importable, empty `tensorrt/` folder: only the real library has Builder.
    return hasattr(tensorrt, "Builder") and _has_gpu()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "gpu" in item.keywords and not _has_gpu():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))
        if "tensorrt" in item.keywords and not _has_tensorrt():
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and a CUDA GPU"))


@pytest.fixture(autouse=True, scope="session")
def _torch_seed() -> None:
    """Seed torch once per session so random test inputs are reproducible run to run."""
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)

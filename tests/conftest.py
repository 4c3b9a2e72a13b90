"""Shared pytest setup: a fixed torch seed, and skips for tests that need a GPU or TensorRT."""

from __future__ import annotations

import pytest
from _hardware import has_gpu, has_tensorrt


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "gpu" in item.keywords and not has_gpu():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))
        if "tensorrt" in item.keywords and not has_tensorrt():
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and a CUDA GPU"))


@pytest.fixture(autouse=True, scope="session")
def _torch_seed() -> None:
    """Seed torch once per session so random test inputs are reproducible run to run."""
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)

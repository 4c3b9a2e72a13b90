"""Shared pytest setup: a fixed torch seed, skips for tests that need a GPU or TensorRT, and one cache."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TGAN_DEPLOY_CACHE for the session (or $TGAN_DEPLOY_TEST_CACHE's), so the MNIST classifier that digit
    evaluations need is trained once (about 40 s), whichever test needs it first. Under pytest-xdist the workers
    share it (the base temp's parent is the run's, common to all workers; cache files are written atomically, so a
    worker sees none or a whole one)."""
    reuse = os.environ.get("TGAN_DEPLOY_TEST_CACHE")
    if reuse:
        return Path(reuse)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "tgan-cache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("tgan-cache")

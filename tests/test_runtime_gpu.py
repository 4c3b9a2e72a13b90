"""GPU backends: ORT CUDA, torch CUDA / CUDA graphs, TensorRT. Skipped without a CUDA GPU (not run on the
2-core build machine; run by scripts/gpu-check.sh on a GPU machine).

References are PyTorch eager on the CPU in fp32; GPU paths are asked for strict fp32 (no TF32), so the
fp32 tolerance is the same as on the CPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _runtime_factories import TinyModels, eager, shared_tiny_models

from tgan_deploy.runtime import BatchingSampler, EngineMismatchError, Sampler, latents
from tgan_deploy.runtime.backends import cuda_device_count

FP32_TOL = 1e-4


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return cuda_device_count() > 0 and torch.cuda.is_available()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _torch_cuda(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(autouse=True)
def strict_fp32() -> None:
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def check_parity(sampler: Sampler, checkpoint: Path) -> None:
    for batch in (1, 7, 64):
        z = latents(range(batch), 8)
        assert np.abs(sampler.generate(z) - eager(checkpoint, z)).max() <= FP32_TOL
    seeds = list(range(50, 60))
    with BatchingSampler(sampler, max_batch=16) as batcher:
        futures = [batcher.submit([s]) for s in seeds]
        batched = np.concatenate([f.result(60) for f in futures])
    assert np.array_equal(batched, sampler.sample(seeds=seeds))


def test_onnxruntime_cuda_parity(tiny_models: TinyModels) -> None:
    from tgan_deploy.runtime.backends.onnxruntime import cuda_usable

    if not cuda_usable():
        pytest.skip("onnxruntime-gpu is not installed")
    with Sampler.open(tiny_models.export, device="cuda") as sampler:
        assert sampler.providers[0] == "CUDAExecutionProvider"
        check_parity(sampler, tiny_models.checkpoint)
    with Sampler.open(tiny_models.export) as auto:  # auto takes the GPU when one is really there
        assert auto.providers[0] == "CUDAExecutionProvider"


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_torch_cuda_parity(tiny_models: TinyModels, cuda_graphs: bool) -> None:
    with Sampler.open(tiny_models.checkpoint, device="cuda", cuda_graphs=cuda_graphs) as sampler:
        assert sampler.providers[0].startswith("cuda")
        check_parity(sampler, tiny_models.checkpoint)


@pytest.mark.tensorrt
def test_tensorrt_parity_and_mismatch(tiny_models: TinyModels, tmp_path: Path) -> None:
    from tgan_deploy.runtime.backends.tensorrt import tensorrt_usable

    if not tensorrt_usable():
        pytest.skip("TensorRT is not installed")
    from tgan_deploy.export.tensorrt import build_engine

    folder = tmp_path / "export"
    shutil.copytree(tiny_models.export, folder)
    plan = build_engine(folder / "generator.onnx", folder, "generator", target="tensorrt", batch_profile=(1, 16, 64),
                        latent_dim=8).plan
    with Sampler.open(folder) as sampler:  # auto prefers the engine
        assert sampler.backend == "tensorrt"
        check_parity(sampler, tiny_models.checkpoint)
        assert np.array_equal(sampler.sample(n=100)[:64], sampler.sample(n=64))  # chunked above the profile max
    plan.write_bytes(b"ftrt" + bytes(1000))  # not an engine of this TensorRT
    with pytest.raises(EngineMismatchError, match="rebuild it"):
        Sampler.open(plan, backend="tensorrt")

"""w-space on the GPU backends: ORT CUDA, torch CUDA and TensorRT (mapping and synthesis engines) against ORT on
the CPU, on the stand-in style export. Skipped without a CUDA GPU (run by scripts/gpu-check.sh on a GPU machine).

GPU paths run strict fp32 (no TF32), so the CPU tolerance of tests/test_runtime_wspace.py holds, widened to
1e-4 (1 + max abs) as the generator GPU tests allow: cuDNN/cuBLAS pick other summation orders per kernel.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _style_export import shared_style_export, style_metadata

from tgan_deploy.runtime import Sampler
from tgan_deploy.runtime.backends import cuda_device_count

GPU_TOL = 1e-4
CONTROLS: dict[str, Any] = {"psi": 0.6, "psi_cutoff": 3, "mix_seeds": 11, "mix_cutoff": 2}


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return cuda_device_count() > 0 and torch.cuda.is_available()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _torch_cuda(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    export = shared_style_export(tmp_path_factory)[1]
    with Sampler.open(export, device="cpu") as cpu:
        return export, cpu.synthesize(cpu.seed_ws(range(40), **CONTROLS))


def check(sampler: Sampler, want: np.ndarray) -> None:
    got = sampler.synthesize(sampler.seed_ws(range(40), **CONTROLS))
    assert np.abs(got - want).max() <= GPU_TOL * (1 + np.abs(want).max())


def test_onnxruntime_cuda(reference: tuple[Path, np.ndarray]) -> None:
    export, want = reference
    with Sampler.open(export, backend="onnxruntime", device="cuda", max_batch=16) as sampler:
        check(sampler, want)


def test_torch_cuda_on_the_stand_in(reference: tuple[Path, np.ndarray],
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    from tgan_deploy.runtime.backends.torch import TorchBackend

    model = copy.deepcopy(shared_style_export(tmp_path_factory)[0])  # the shared module stays on the CPU
    meta = style_metadata(model)
    with Sampler(TorchBackend.from_generator(model, meta, device="cuda", max_batch=16), meta) as sampler:
        check(sampler, reference[1])


def _engine(onnx_file: Path, plan: Path) -> None:
    """An fp32 engine with one dynamic-batch profile (1, 16, 64) over every input of the graph."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(onnx_file)), parser.get_error(0).desc()
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = list(tensor.shape)[1:]
        profile.set_shape(tensor.name, trt.Dims([1, *rest]), trt.Dims([16, *rest]), trt.Dims([64, *rest]))
    config.add_optimization_profile(profile)
    plan.write_bytes(bytes(memoryview(builder.build_serialized_network(network, config))))


@pytest.mark.tensorrt
def test_tensorrt_mapping_and_synthesis_engines(reference: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from tgan_deploy.runtime.backends.tensorrt import tensorrt_usable

    if not tensorrt_usable():
        pytest.skip("TensorRT is not installed")
    export, want = reference
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    meta = json.loads((folder / "model.json").read_text())
    for role in ("mapping", "synthesis"):
        _engine(folder / f"{role}.onnx", folder / f"{role}.plan")
        meta["files"][f"{role}_tensorrt"] = f"{role}.plan"
    (folder / "model.json").write_text(json.dumps(meta))
    with Sampler.open(folder) as sampler:  # auto prefers the engines
        assert sampler.backend == "tensorrt"
        check(sampler, want)
        np.testing.assert_array_equal(sampler.sample(range(100))[:64], sampler.sample(range(64)))  # chunked

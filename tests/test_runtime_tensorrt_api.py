"""The TensorRT backend's API use, checked on this GPU-less machine through TensorRT-RTX.

TensorRT itself cannot be installed here, but TensorRT-RTX (a dev dependency) shares its Python API and
builds engines without a GPU. These tests check that every name the backend calls exists and that its
logger captures the error of a failed deserialisation (the source of EngineMismatchError's detail). The
engine builder the GPU tests use is the exporter's (tests/test_export_onnx.py builds our exports with it).
Running an engine still needs a GPU.
"""

from __future__ import annotations

import pytest

from tgan_deploy.runtime.backends.tensorrt import _recording_logger, _torch_dtype

trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx (dev extra) is not installed")


def test_every_api_name_the_backend_uses_exists() -> None:
    assert hasattr(trt.Runtime, "deserialize_cuda_engine")
    for name in ("num_io_tensors", "get_tensor_name", "get_tensor_shape", "get_tensor_dtype",
                 "get_tensor_profile_shape", "create_execution_context"):
        assert hasattr(trt.ICudaEngine, name), name
    for name in ("set_input_shape", "set_tensor_address", "execute_async_v3"):
        assert hasattr(trt.IExecutionContext, name), name


def test_dtype_table() -> None:
    import torch

    assert _torch_dtype(torch, trt, trt.DataType.FLOAT) == torch.float32
    assert _torch_dtype(torch, trt, trt.DataType.HALF) == torch.float16
    assert _torch_dtype(torch, trt, trt.DataType.UINT8) == torch.uint8


def test_recording_logger_keeps_the_deserialisation_error() -> None:
    logger = _recording_logger(trt)
    engine = trt.Runtime(logger).deserialize_cuda_engine(b"ftrt" + bytes(1000))
    assert engine is None
    assert logger.errors and all(isinstance(m, str) and m for m in logger.errors)


"""TensorRT backend (TensorRT 10/11 name-based API): a serialized engine run on its own CUDA stream.

Device buffers are torch tensors sized for `max_batch` (no pycuda/cuda-python dependency); host
buffers are pinned so the copies are asynchronous on the engine's stream. An engine only runs on the
TensorRT version and GPU it was built for: deserialisation failures say so and how to rebuild.

Unverified here (no GPU, no TensorRT on this machine): written against NVIDIA's Python API docs and
type-checked against tensorrt-stubs 10.13; its tests are marked `tensorrt` and run on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, WS_NAME, ArtefactMetadata
from tgan_deploy.runtime.backends import StyleGraphs, cuda_device_count, latent_arrays
from tgan_deploy.runtime.errors import BackendUnavailableError, EngineMismatchError, ModelLoadError


def import_tensorrt() -> Any:
    message = ("TensorRT is not installed: pip install 'tgan-deploy[tensorrt]' (needs NVIDIA's package index "
               "and a CUDA GPU), or use --backend onnxruntime")
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(message) from exc
    # tensorrt-stubs or a bindings wheel without its libraries leave an empty namespace package behind.
    if not hasattr(tensorrt, "Runtime"):
        raise BackendUnavailableError(message)
    return tensorrt


def tensorrt_usable() -> bool:
    """TensorRT and torch (for device buffers) import, and a CUDA GPU is really present."""
    try:
        import_tensorrt()
        import torch
    except (ImportError, BackendUnavailableError):
        return False
    return cuda_device_count() > 0 and torch.cuda.is_available()


class EngineGraph:
    """One serialized engine with named inputs (batch first) and one output, run on its own CUDA stream."""

    def __init__(self, engine_file: Path, inputs: list[str], output: str, device_index: int = 0,
                 max_batch: int = 64) -> None:
        import_tensorrt()  # a clear error if it is missing; then the typed import (checked against tensorrt-stubs)
        import tensorrt as trt

        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError("the TensorRT backend allocates its buffers with torch: "
                                          "pip install 'tgan-deploy[train]' (a CUDA build of torch)") from exc
        if cuda_device_count() == 0 or not torch.cuda.is_available():
            raise BackendUnavailableError("the TensorRT backend needs a CUDA GPU and a CUDA build of torch: "
                                          "use --backend onnxruntime on this machine")
        self._torch = torch
        self.device = torch.device(f"cuda:{device_index}")
        logger = _recording_logger(trt)
        try:
            data = engine_file.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read TensorRT engine {engine_file}: {exc.strerror}") from exc
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(logger)
            self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                gpu = torch.cuda.get_device_name(self.device)
                detail = f" ({logger.errors[-1][:200]})" if logger.errors else ""
                raise EngineMismatchError(
                    f"TensorRT {trt.__version__} on {gpu} cannot load engine {engine_file}{detail}: it was built "
                    "for another TensorRT version or GPU, or is corrupt; rebuild it on this machine with "
                    "tgan-export --trt, or use --backend onnxruntime")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise EngineMismatchError(f"TensorRT could not create an execution context for {engine_file} "
                                          "(out of GPU memory, or an engine for another GPU): rebuild it here")
        self.providers = [f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(self.device)}"]
        self.inputs, self.output = inputs, output
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if any(name not in names for name in [*inputs, output]):
            raise ModelLoadError(f"engine {engine_file} has tensors {names}, expected {[*inputs, output]}: rebuild "
                                 "it from the export's ONNX file")
        # A dynamic batch is bounded by the engine's optimisation profile (the Sampler chunks above it); an
        # engine with a fixed batch B always runs B rows, smaller requests padded.
        engine_batch = int(self.engine.get_tensor_shape(inputs[0])[0])
        self._fixed_batch = engine_batch if engine_batch > 0 else 0
        profile_max = self._fixed_batch or int(self.engine.get_tensor_profile_shape(inputs[0], 0)[2][0])
        self.max_batch = self._fixed_batch or min(max_batch, profile_max)
        self._stream = torch.cuda.Stream(self.device)
        self._buffers: dict[str, Any] = {}
        for name in names:
            dims = self.engine.get_tensor_shape(name)
            shape = [self.max_batch if dims[i] < 0 else dims[i] for i in range(len(dims))]
            shape[0] = self.max_batch
            dtype = _torch_dtype(torch, trt, self.engine.get_tensor_dtype(name))
            self._buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, self._buffers[name].data_ptr())
        self._out_dev = self._buffers[output]
        self.output_dtype = "uint8" if self._out_dev.dtype == torch.uint8 else "float32"
        # pinned host copies of the inputs, each of its engine tensor's type (`label`: INT64 in TensorRT 10,
        # INT32 where it was cast), so the copies are asynchronous on the stream
        self._host_in = {name: torch.zeros(self._buffers[name].shape, dtype=self._buffers[name].dtype,
                                           pin_memory=True) for name in inputs}
        self._host_out_buf = torch.empty(self._out_dev.shape, dtype=self._out_dev.dtype, pin_memory=True)

    def run(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The output for these inputs (one array per input name, same batch), copied to a reused host buffer."""
        torch, batch = self._torch, arrays[0].shape[0]
        for name, array in zip(self.inputs, arrays, strict=True):
            self._host_in[name][:batch].numpy()[...] = array
        rows = self._fixed_batch or batch  # a fixed-batch engine runs all its rows; the padding is ignored
        with torch.cuda.stream(self._stream):
            for name in self.inputs:
                self._buffers[name][:rows].copy_(self._host_in[name][:rows], non_blocking=True)
                if not self._fixed_batch:
                    self.context.set_input_shape(name, (batch, *self._buffers[name].shape[1:]))
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise ModelLoadError("TensorRT execute_async_v3 failed (see TensorRT's log above)")
            self._host_out_buf[:batch].copy_(self._out_dev[:batch], non_blocking=True)
        self._stream.synchronize()
        out: np.ndarray = self._host_out_buf[:batch].numpy()
        return out.astype(np.float32) if out.dtype == np.float16 else out

    def close(self) -> None:
        self._buffers.clear()
        del self.context, self.engine  # TensorRT frees the engine when its last reference goes


def _latent_inputs(metadata: ArtefactMetadata) -> list[str]:
    return [INPUT_NAME, *([LABEL_NAME] if metadata.conditional else [])]


class TensorRTBackend:
    """generator.plan: z[, label] -> image."""

    name = "tensorrt"

    def __init__(self, engine_file: Path, metadata: ArtefactMetadata, device_index: int = 0,
                 max_batch: int = 64) -> None:
        self.metadata = metadata
        self._graph = EngineGraph(engine_file, _latent_inputs(metadata), metadata.output_name, device_index,
                                  max_batch)
        self.providers, self.max_batch = self._graph.providers, self._graph.max_batch
        self.output_dtype = self._graph.output_dtype

    def run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return self._graph.run(latent_arrays(z, labels))

    def close(self) -> None:
        self._graph.close()


class TensorRTStyleBackend(StyleGraphs):
    """A style model's mapping and synthesis engines (files roles mapping_tensorrt, synthesis_tensorrt)."""

    name = "tensorrt"

    def __init__(self, mapping_engine: Path, synthesis_engine: Path, metadata: ArtefactMetadata,
                 device_index: int = 0, max_batch: int = 64) -> None:
        self.metadata = metadata
        self._mapping = EngineGraph(mapping_engine, _latent_inputs(metadata), WS_NAME, device_index, max_batch)
        self._synthesis = EngineGraph(synthesis_engine, [WS_NAME], metadata.output_name, device_index, max_batch)
        self.providers = self._synthesis.providers
        self.max_batch = min(self._mapping.max_batch, self._synthesis.max_batch)
        self.output_dtype = self._synthesis.output_dtype


def _torch_dtype(torch: Any, trt: Any, dtype: Any) -> Any:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.UINT8: torch.uint8,
             trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64}
    if dtype not in table:
        raise ModelLoadError(f"engine tensor type {dtype} is not supported: export with fp32 or fp16 I/O")
    return table[dtype]


def _recording_logger(trt: Any) -> Any:
    """A TensorRT logger that prints warnings and keeps error messages for our one-line error."""

    class RecordingLogger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
            elif int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"TensorRT: {msg}")

    return RecordingLogger()

"""ONNX Runtime backend: one session created once, warmed up, run through IO binding on reused buffers.

`OnnxRuntimeBackend` runs generator.onnx (z[, label] -> image); `OnnxRuntimeStyleBackend` runs a style
model's mapping.onnx (z[, label] -> ws) and synthesis.onnx (ws -> image), between which the Sampler applies
truncation in w and style mixing. Both run their graphs through `BoundGraph`.

CPU: intra-op threads = the cores this process may use (or `threads`), no spin-waiting, sequential
execution, every graph optimisation; the output of each run lands in one pre-allocated [max_batch, ...] buffer.
CUDA: asked for only when a GPU is really there (onnxruntime-gpu silently falls back to the CPU
otherwise); input and output live on the GPU as OrtValues bound once per batch size.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, WS_NAME, ArtefactMetadata
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.backends import StyleGraphs, cuda_device_count, latent_arrays
from tgan_deploy.runtime.errors import BackendUnavailableError, ModelLoadError

CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
_MAX_GPU_BINDINGS = 16  # batch sizes whose GPU buffers stay allocated (least recently used dropped)


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime "
                                      "(or onnxruntime-gpu for CUDA)") from exc
    return onnxruntime


def cuda_usable() -> bool:
    """The CUDA provider is installed AND a CUDA device is really present."""
    ort = import_onnxruntime()
    return CUDA_PROVIDER in ort.get_available_providers() and cuda_device_count() > 0


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: its name, the shape of one row (after the batch axis) and its numpy dtype."""

    name: str
    row_shape: tuple[int, ...]
    dtype: Any


def open_session(onnx_file: Path, device: str = "cpu", device_index: int = 0, threads: int | None = None) -> Any:
    """An InferenceSession on the CPU (threads as the module doc says) or on CUDA (never a silent fallback)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    # No spin-waiting between ops: on shared or oversubscribed cores spinning threads steal the cores the
    # work needs (batch 64 took 1.5-1.7x longer with spinning on the 2-core build machine), and between
    # micro-batches they would burn CPU while idle.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: a silent fallback is detected below, not logged
    if device == "cuda":
        if not cuda_usable():
            raise BackendUnavailableError(
                "ONNX Runtime cannot use CUDA here (no CUDA GPU, or the CPU-only onnxruntime is installed): "
                "pip install onnxruntime-gpu on a machine with an NVIDIA GPU, or use --device cpu")
        # use_tf32=0: strict fp32, the same numbers as the CPU (TF32 convs differ by ~1e-3).
        providers: list[Any] = [(CUDA_PROVIDER, {"device_id": str(device_index), "use_tf32": "0"}), CPU_PROVIDER]
    else:
        providers = [CPU_PROVIDER]
    try:
        session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=providers)
    except Exception as exc:  # InvalidProtobuf, NoSuchFile, Fail: all mean an unusable file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"ONNX Runtime cannot load {onnx_file} ({reason}): the file is corrupt or not "
                             "an ONNX model; re-run tgan-export") from exc
    if device == "cuda" and session.get_providers()[0] != CUDA_PROVIDER:
        raise BackendUnavailableError(f"ONNX Runtime fell back to {session.get_providers()[0]} instead of CUDA: "
                                      "check the CUDA/cuDNN libraries onnxruntime-gpu needs")
    return session


def check_io(session: Any, onnx_file: Path, inputs: list[str], output: str, meta: ArtefactMetadata) -> None:
    """ModelLoadError unless the graph has exactly `inputs` (in order) and an output named `output`."""
    found = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if found != inputs or output not in outputs:
        raise ModelLoadError(f"{onnx_file} has inputs {found} and outputs {outputs}, expected inputs {inputs} and "
                             f"output {output!r} (model.json says {meta.num_classes} classes): re-run tgan-export")


def output_row_shape(meta: ArtefactMetadata) -> tuple[int, ...]:
    if meta.kind == "points":
        return (2,)
    assert meta.channels is not None and meta.resolution is not None
    return (meta.channels, meta.resolution, meta.resolution)


def latent_inputs(meta: ArtefactMetadata) -> list[TensorSpec]:
    """generator.onnx's and mapping.onnx's inputs: z, and label for a class-conditional model."""
    z = TensorSpec(INPUT_NAME, (meta.latent_dim,), np.float32)
    return [z, TensorSpec(LABEL_NAME, (), np.int64)] if meta.conditional else [z]


class BoundGraph:
    """One session run through IO binding: on the CPU views on one [max_batch, ...] buffer per tensor, on CUDA
    device OrtValues bound once per batch size (the least recently used dropped past _MAX_GPU_BINDINGS)."""

    def __init__(self, session: Any, inputs: list[TensorSpec], output: TensorSpec, max_batch: int,
                 on_gpu: bool, device_index: int) -> None:
        self._ort, self.session = import_onnxruntime(), session
        self.inputs, self.output = inputs, output
        self.on_gpu, self.device_index = on_gpu, device_index
        self._in_bufs = [np.zeros((max_batch, *spec.row_shape), spec.dtype) for spec in inputs]
        self._out_buf = np.empty((max_batch, *output.row_shape), output.dtype)
        self._bindings: OrderedDict[int, tuple[Any, list[Any], Any]] = OrderedDict()

    def _binding(self, batch: int) -> tuple[Any, list[Any], Any]:
        """(io_binding, input OrtValues, output OrtValue) for one batch size, made once."""
        if batch in self._bindings:
            self._bindings.move_to_end(batch)
            return self._bindings[batch]
        ort, binding = self._ort, self.session.io_binding()
        if self.on_gpu:
            def value(spec: TensorSpec) -> Any:
                return ort.OrtValue.ortvalue_from_shape_and_type([batch, *spec.row_shape], spec.dtype, "cuda",
                                                                 self.device_index)
            in_vals, out_val = [value(spec) for spec in self.inputs], value(self.output)
        else:  # views on the shared buffers: no allocation per call
            in_vals = [ort.OrtValue.ortvalue_from_numpy(buf[:batch]) for buf in self._in_bufs]
            out_val = ort.OrtValue.ortvalue_from_numpy(self._out_buf[:batch])
        for spec, val in zip(self.inputs, in_vals, strict=True):
            binding.bind_ortvalue_input(spec.name, val)
        binding.bind_ortvalue_output(self.output.name, out_val)
        self._bindings[batch] = (binding, in_vals, out_val)
        if self.on_gpu and len(self._bindings) > _MAX_GPU_BINDINGS:
            self._bindings.popitem(last=False)
        return self._bindings[batch]

    def run(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The output for these inputs (one array per input spec, same batch); a reused buffer on the CPU."""
        batch = arrays[0].shape[0]
        binding, in_vals, out_val = self._binding(batch)
        if self.on_gpu:
            for spec, val, array in zip(self.inputs, in_vals, arrays, strict=True):
                val.update_inplace(np.ascontiguousarray(array, spec.dtype))  # host -> device copy into the binding
            self.session.run_with_iobinding(binding)
            result: np.ndarray = out_val.numpy()  # device -> host copy
            return result
        for buf, array in zip(self._in_bufs, arrays, strict=True):
            buf[:batch] = array
        self.session.run_with_iobinding(binding)
        return self._out_buf[:batch]

    def close(self) -> None:
        self._bindings.clear()


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, onnx_file: Path, metadata: ArtefactMetadata | None, device: str = "cpu",
                 device_index: int = 0, max_batch: int = 64, threads: int | None = None) -> None:
        self.session = open_session(onnx_file, device, device_index, threads)
        self.providers: list[str] = list(self.session.get_providers())
        self.metadata = metadata or self._metadata_from_props(onnx_file)
        inputs = latent_inputs(self.metadata)
        check_io(self.session, onnx_file, [spec.name for spec in inputs], self.metadata.output_name, self.metadata)
        self.max_batch = max_batch
        self.output_dtype = self.metadata.output_dtype
        out_dtype = np.uint8 if self.output_dtype == "uint8" else np.float32
        self._graph = BoundGraph(self.session, inputs,
                                 TensorSpec(self.metadata.output_name, output_row_shape(self.metadata), out_dtype),
                                 max_batch, device == "cuda", device_index)

    def _metadata_from_props(self, onnx_file: Path) -> ArtefactMetadata:
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        if not props:
            raise ModelLoadError(f"{onnx_file} carries no tgan-deploy metadata (metadata_props) and has no "
                                 "model.json beside it: export it with tgan-export")
        try:
            return ArtefactMetadata.from_onnx_props(props)
        except TganError as exc:
            raise ModelLoadError(f"{onnx_file}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{onnx_file} has unreadable metadata_props ({exc}): re-run tgan-export") from exc

    def run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return self._graph.run(latent_arrays(z, labels))

    def close(self) -> None:
        self._graph.close()


class OnnxRuntimeStyleBackend(StyleGraphs):
    """A style model's mapping.onnx and synthesis.onnx, each its own session (see runtime/wspace.py)."""

    name = "onnxruntime"

    def __init__(self, mapping_file: Path, synthesis_file: Path, metadata: ArtefactMetadata, device: str = "cpu",
                 device_index: int = 0, max_batch: int = 64, threads: int | None = None) -> None:
        self.metadata = metadata
        self.max_batch = max_batch
        self.output_dtype = metadata.output_dtype
        on_gpu = device == "cuda"
        ws = TensorSpec(WS_NAME, (metadata.num_ws, metadata.w_dim), np.float32)
        mapping = open_session(mapping_file, device, device_index, threads)
        check_io(mapping, mapping_file, [spec.name for spec in latent_inputs(metadata)], WS_NAME, metadata)
        synthesis = open_session(synthesis_file, device, device_index, threads)
        check_io(synthesis, synthesis_file, [WS_NAME], metadata.output_name, metadata)
        self.providers: list[str] = list(synthesis.get_providers())
        image = TensorSpec(metadata.output_name, output_row_shape(metadata),
                           np.uint8 if self.output_dtype == "uint8" else np.float32)
        self._mapping = BoundGraph(mapping, latent_inputs(metadata), ws, max_batch, on_gpu, device_index)
        self._synthesis = BoundGraph(synthesis, [ws], image, max_batch, on_gpu, device_index)

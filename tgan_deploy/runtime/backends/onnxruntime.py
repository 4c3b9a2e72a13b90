"""ONNX Runtime backend: one session created once, warmed up, run through IO binding on reused buffers.

CPU: intra-op threads = the cores this process may use (or `threads`), no spin-waiting, sequential
execution, every graph optimisation; the output of each run lands in one pre-allocated [max_batch, ...] buffer.
CUDA: asked for only when a GPU is really there (onnxruntime-gpu silently falls back to the CPU
otherwise); input and output live on the GPU as OrtValues bound once per batch size.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, ArtefactMetadata
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.backends import cuda_device_count
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


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, onnx_file: Path, metadata: ArtefactMetadata | None, device: str = "cpu",
                 device_index: int = 0, max_batch: int = 64, threads: int | None = None) -> None:
        ort = import_onnxruntime()
        self._ort = ort
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
            providers: list[Any] = [(CUDA_PROVIDER, {"device_id": str(device_index), "use_tf32": "0"}),
                                    CPU_PROVIDER]
        else:
            providers = [CPU_PROVIDER]
        try:
            self.session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=providers)
        except Exception as exc:  # InvalidProtobuf, NoSuchFile, Fail: all mean an unusable file
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"ONNX Runtime cannot load {onnx_file} ({reason}): the file is corrupt or not "
                                 "an ONNX model; re-run tgan-export") from exc
        self.providers: list[str] = list(self.session.get_providers())
        if device == "cuda" and self.providers[0] != CUDA_PROVIDER:
            raise BackendUnavailableError(f"ONNX Runtime fell back to {self.providers[0]} instead of CUDA: "
                                          "check the CUDA/cuDNN libraries onnxruntime-gpu needs")
        self.on_gpu = device == "cuda"
        self.device_index = device_index
        self.metadata = metadata or self._metadata_from_props(onnx_file)
        self._check_io(onnx_file)
        self.max_batch = max_batch
        self.output_dtype = self.metadata.output_dtype
        self._np_out_dtype = np.uint8 if self.output_dtype == "uint8" else np.float32
        self._out_shape = self._output_shape()
        # CPU: one input and one output buffer reused by every call; bindings are cheap views on them.
        self._z_buf = np.empty((max_batch, self.metadata.latent_dim), np.float32)
        self._label_buf = np.zeros(max_batch, np.int64)  # bound only for class-conditional models
        self._out_buf = np.empty((max_batch, *self._out_shape), self._np_out_dtype)
        self._bindings: OrderedDict[int, tuple[Any, Any, Any, Any]] = OrderedDict()

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

    def _check_io(self, onnx_file: Path) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        expected = [INPUT_NAME, LABEL_NAME] if self.metadata.conditional else [INPUT_NAME]
        if inputs != expected or self.metadata.output_name not in outputs:
            raise ModelLoadError(f"{onnx_file} has inputs {inputs} and outputs {outputs}, expected inputs "
                                 f"{expected} and output {self.metadata.output_name!r} (model.json says "
                                 f"{self.metadata.num_classes} classes): re-run tgan-export")

    def _output_shape(self) -> tuple[int, ...]:
        m = self.metadata
        if m.kind == "points":
            return (2,)
        assert m.channels is not None and m.resolution is not None
        return (m.channels, m.resolution, m.resolution)

    def _binding(self, batch: int) -> tuple[Any, Any, Any, Any]:
        """(io_binding, z, label (None if unconditional) and output OrtValues) for one batch size, made once."""
        if batch in self._bindings:
            self._bindings.move_to_end(batch)
            return self._bindings[batch]
        ort, binding = self._ort, self.session.io_binding()
        if self.on_gpu:
            z_val = ort.OrtValue.ortvalue_from_shape_and_type(
                [batch, self.metadata.latent_dim], np.float32, "cuda", self.device_index)
            out_val = ort.OrtValue.ortvalue_from_shape_and_type(
                [batch, *self._out_shape], self._np_out_dtype, "cuda", self.device_index)
            label_val = ort.OrtValue.ortvalue_from_shape_and_type([batch], np.int64, "cuda", self.device_index)
        else:  # views on the shared buffers: no allocation per call
            z_val = ort.OrtValue.ortvalue_from_numpy(self._z_buf[:batch])
            out_val = ort.OrtValue.ortvalue_from_numpy(self._out_buf[:batch])
            label_val = ort.OrtValue.ortvalue_from_numpy(self._label_buf[:batch])
        binding.bind_ortvalue_input(INPUT_NAME, z_val)
        if self.metadata.conditional:
            binding.bind_ortvalue_input(LABEL_NAME, label_val)
        else:
            label_val = None
        binding.bind_ortvalue_output(self.metadata.output_name, out_val)
        self._bindings[batch] = (binding, z_val, label_val, out_val)
        if self.on_gpu and len(self._bindings) > _MAX_GPU_BINDINGS:
            self._bindings.popitem(last=False)
        return self._bindings[batch]

    def run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        batch = z.shape[0]
        binding, z_val, label_val, out_val = self._binding(batch)
        if self.on_gpu:
            z_val.update_inplace(np.ascontiguousarray(z))  # host -> device copy into the bound buffer
            if label_val is not None:
                label_val.update_inplace(np.ascontiguousarray(labels, np.int64))
            self.session.run_with_iobinding(binding)
            result: np.ndarray = out_val.numpy()  # device -> host copy
            return result
        self._z_buf[:batch] = z
        if labels is not None:
            self._label_buf[:batch] = labels
        self.session.run_with_iobinding(binding)
        return self._out_buf[:batch]

    def close(self) -> None:
        self._bindings.clear()

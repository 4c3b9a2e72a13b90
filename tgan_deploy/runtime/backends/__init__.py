"""Backends run a generator on latents; the Sampler above them does seeds, chunking, uint8 and locking.

Every backend module imports its heavy dependency (onnxruntime, tensorrt, torch) only when opened, so
`import tgan_deploy.runtime` stays light. A backend's `run(z, labels)` takes float32 z [b, latent_dim] with
1 <= b <= max_batch (and, for class-conditional models, int64 labels [b] already checked against the
classes; None otherwise) and returns the model's output for those rows in the backend's `output_dtype`;
the returned array may be a reused buffer, valid until the next `run` (the Sampler copies it out
under its lock). A style model's backend (`StyleBackend`) has `map(z, labels)` -> ws float32 [b, num_ws,
w_dim] and `synthesize(ws)` -> image instead, under the same rules; the Sampler applies the w controls
between them (runtime/wspace.py).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Protocol

import numpy as np

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


class Backend(Protocol):
    name: str  # "onnxruntime", "tensorrt" or "torch"
    providers: list[str]  # what really executes, e.g. ["CPUExecutionProvider"] or ["cuda:0"]
    max_batch: int
    output_dtype: str  # "float32" or "uint8"

    def run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray: ...

    def close(self) -> None: ...


class StyleBackend(Protocol):
    name: str
    providers: list[str]
    max_batch: int
    output_dtype: str

    def map(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray: ...

    def synthesize(self, ws: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class GraphRunner(Protocol):
    """One graph of a backend (an ONNX Runtime session, a TensorRT engine): arrays in, one output out."""

    def run(self, arrays: list[np.ndarray]) -> np.ndarray: ...

    def close(self) -> None: ...


def latent_arrays(z: np.ndarray, labels: np.ndarray | None) -> list[np.ndarray]:
    """The inputs of a graph that takes z (and label, for a class-conditional model)."""
    return [z] if labels is None else [z, labels]


class StyleGraphs:
    """`map`, `synthesize` and `close` of a StyleBackend over its two runners (set by the subclass)."""

    _mapping: GraphRunner
    _synthesis: GraphRunner

    def map(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return self._mapping.run(latent_arrays(z, labels))

    def synthesize(self, ws: np.ndarray) -> np.ndarray:
        return self._synthesis.run([ws])

    def close(self) -> None:
        self._mapping.close()
        self._synthesis.close()


@functools.cache
def cuda_device_count() -> int:
    """CUDA devices really present, asked of the driver itself (no torch needed; 0 without a driver).

    onnxruntime-gpu lists CUDAExecutionProvider on machines with no GPU and then silently runs on the
    CPU, so its provider list is not evidence of a GPU.
    """
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def parse_device(device: str) -> tuple[str, int]:
    """"cpu", "cuda", "cuda:1" or "auto" -> (kind, index); "auto" is resolved by the caller."""
    from tgan_deploy.errors import TganError

    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and not index.isdigit()) or (kind != "cuda" and index):
        raise TganError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N")
    return kind, int(index or 0)

"""`Sampler`: open an exported model or a checkpoint once, then turn seeds or latents into images fast.

    with Sampler.open("export/") as sampler:          # backend="auto": TensorRT > ORT CUDA > ORT CPU
        images = sampler.sample(seeds=[0, 1, 2])       # uint8 [3, H, W, C]
        sharper = sampler.sample(seeds=[0, 1, 2], truncation=0.7)   # BigGAN's truncation trick
        morph = sampler.interpolate(3, 17, steps=8)    # seed 3's image ... seed 17's, slerp
        same = sampler.sample(n=3, seed=0)             # seeds 0, 1, 2
        x = sampler.generate(latents([0], sampler.latent_dim))  # float32 [1, C, H, W] in [-1, 1]
        sevens = sampler.sample(seeds=[0, 1], labels="7")  # class-conditional models: by name or index

One Sampler is safe to share between threads: each backend call and the copy out of its reused
buffers happen under one lock (the backend already uses every core for one batch; to serve many
small concurrent requests efficiently, put a `BatchingSampler` in front of it).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.backends import BACKENDS, Backend, cuda_device_count, parse_device
from tgan_deploy.runtime.errors import InvalidLatentError, ModelLoadError
from tgan_deploy.runtime.images import from_uint8, nchw_to_nhwc, to_uint8
from tgan_deploy.runtime.labels import Label, Labels, class_name, label_record, resolve_label, resolve_labels
from tgan_deploy.runtime.latents import InvalidSeedError, interpolate_latents, latents
from tgan_deploy.runtime.model_path import ModelLocation, locate_model


class Sampler:
    def __init__(self, backend: Backend, metadata: ArtefactMetadata, source: str = "", warmup: bool = True) -> None:
        self._backend = backend
        self._meta = metadata
        self.source = source
        self._lock = threading.Lock()
        self._closed = False
        if warmup:  # first runs allocate memory and pick kernels: pay for them before the first request
            sizes = {1, backend.max_batch} if _on_gpu(backend) else {1}
            for size in sorted(sizes):
                self.generate(np.zeros((size, self.latent_dim), np.float32), 0 if metadata.conditional else None)

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, backend: str = "auto", device: str = "auto", max_batch: int = 64,
             threads: int | None = None, weights: str = "ema", cuda_graphs: bool = False,
             warmup: bool = True) -> Sampler:
        """Open an export (directory, .onnx, .plan/.engine) or a checkpoint (file or run directory).

        backend: "auto" (TensorRT if an engine, TensorRT and a GPU are there; else ONNX Runtime on CUDA
        if a GPU is really present; else ONNX Runtime on the CPU; a checkpoint always uses "torch"),
        or "tensorrt", "onnxruntime", "torch". device: "auto", "cpu", "cuda", "cuda:N".
        max_batch: the largest batch run at once (bigger requests are split into chunks).
        threads: CPU threads for one batch (default: every core this process may use).
        weights, cuda_graphs: torch backend only (EMA or raw weights; CUDA-graph capture per batch size).
        """
        if backend not in BACKENDS:
            raise TganError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise TganError(f"max_batch must be a positive integer, got {max_batch!r}")
        device_kind, index = parse_device(device)
        location = locate_model(path)
        chosen = _choose_backend(location, backend, device_kind)
        impl: Backend
        if chosen == "torch":
            from tgan_deploy.runtime.backends.torch import TorchBackend

            torch_device = device_kind if device_kind != "auto" else ("cuda" if _torch_cuda() else "cpu")
            impl = TorchBackend(_need(location.checkpoint, location, "torch"), torch_device, index, max_batch,
                                threads, weights, cuda_graphs)
            metadata = impl.metadata
        elif chosen == "tensorrt":
            from tgan_deploy.runtime.backends.tensorrt import TensorRTBackend

            assert location.metadata is not None  # locate_model requires model.json beside an engine
            impl = TensorRTBackend(_need(location.engine, location, "tensorrt"), location.metadata, index, max_batch)
            metadata = location.metadata
        else:
            from tgan_deploy.runtime.backends.onnxruntime import OnnxRuntimeBackend, cuda_usable

            ort_device = device_kind if device_kind != "auto" else ("cuda" if cuda_usable() else "cpu")
            ort = OnnxRuntimeBackend(_need(location.onnx, location, "onnxruntime"), location.metadata, ort_device,
                                     index, max_batch, threads)
            impl, metadata = ort, ort.metadata
        return cls(impl, metadata, source=str(location.path), warmup=warmup)

    # -- what runs -------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend really running: "tensorrt", "onnxruntime" or "torch"."""
        return self._backend.name

    @property
    def providers(self) -> list[str]:
        """What executes inside the backend, e.g. ORT's session.get_providers() or ["cuda:0"]."""
        return list(self._backend.providers)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._meta.to_dict()

    @property
    def latent_dim(self) -> int:
        return self._meta.latent_dim

    @property
    def kind(self) -> str:
        """"image" or "points" (2-D toy models)."""
        return self._meta.kind

    @property
    def max_batch(self) -> int:
        return self._backend.max_batch

    @property
    def num_classes(self) -> int:
        """0 for an unconditional model; else how many classes its `labels` choose from."""
        return self._meta.num_classes

    @property
    def classes(self) -> list[str]:
        """Class names in index order (empty for an unconditional model)."""
        return list(self._meta.classes)

    def label_index(self, label: Label) -> int:
        """One label (class index or name) -> its class index; InvalidLabelError naming the valid classes."""
        return resolve_label(self._meta, label)

    def class_name(self, index: int) -> str:
        """The name of class `index` (its index as text where the export names no classes)."""
        return class_name(self._meta, index)

    def label_record(self, label: Label) -> dict[str, Any]:
        """{"label": index, "class": name} of one label (class index or name): labels.label_record."""
        return label_record(self._meta, self.label_index(label))

    # -- sampling --------------------------------------------------------------------------------
    def generate(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Latents float32 [N, latent_dim] -> float32 images [N, C, H, W] in [-1, 1] (points: [N, 2]).

        labels: class-conditional models only: one label for all rows or one per row, index or class name.
        With a uint8 export the values are the uint8 output mapped back to [-1, 1] (within 1/255).
        """
        out = self._run(*self._inputs(z, labels))
        return from_uint8(out) if out.dtype == np.uint8 else out

    def sample_latents(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Latents (and labels, as `generate` takes them) -> uint8 images [N, H, W, C] (points: float32 [N, 2])."""
        out = self._run(*self._inputs(z, labels))
        if self.kind == "points":
            return out
        return nchw_to_nhwc(out if out.dtype == np.uint8 else to_uint8(out))

    def sample(self, seeds: Iterable[int] | None = None, *, n: int | None = None, seed: int = 0,
               truncation: float | None = None, psi: float | None = None, labels: Labels = None) -> np.ndarray:
        """uint8 images [N, H, W, C] (points: float32 [N, 2]) for `seeds`, or for seeds seed .. seed+n-1.

        truncation, psi: the latent controls of `tgan_deploy.runtime.latents` (None: the plain contract).
        labels: for class-conditional models (required there): one label for all seeds or one per seed, each a
        class index or name (`classes`). A seed gives the same latent under every label.
        """
        seed_list = self.seed_list(seeds, n=n, seed=seed)
        return self.sample_latents(latents(seed_list, self.latent_dim, truncation=truncation, psi=psi), labels)

    def interpolate(self, seed_a: int, seed_b: int, steps: int, method: str = "slerp", *,
                    truncation: float | None = None, psi: float | None = None, label: Labels = None) -> np.ndarray:
        """`steps` images morphing seed_a's into seed_b's; the first and last equal `sample([seed_a])`, `([seed_b])`.

        method: "slerp" (default: stays where Gaussian latents live) or "lerp"; see `interpolate_latents`.
        label: the class of every frame, for a class-conditional model.
        """
        ends = latents([seed_a, seed_b], self.latent_dim, truncation=truncation, psi=psi)
        return self.sample_latents(interpolate_latents(ends[0], ends[1], steps, method), label)

    @staticmethod
    def seed_list(seeds: Iterable[int] | None = None, *, n: int | None = None, seed: int = 0) -> list[int]:
        """The seeds a `sample` call means: `seeds` as given, or seed, seed+1, ..., seed+n-1."""
        if seeds is not None:
            if n is not None:
                raise TganError("pass either seeds or n (with seed), not both")
            return list(seeds)
        if n is None:
            raise TganError("pass seeds=[...] or n=... (with seed=...)")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise InvalidLatentError(f"n must be a positive integer, got {n!r}: ask for at least one image")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise InvalidSeedError(f"seed {seed!r} is not a non-negative integer: seeds must be ints >= 0")
        return list(range(int(seed), int(seed) + int(n)))

    def check_latents(self, z: Any) -> np.ndarray:
        """Reject what the model cannot take: non-arrays, wrong dtype or shape, an empty batch, NaN/Inf."""
        if not isinstance(z, np.ndarray):
            raise InvalidLatentError(f"latents must be a numpy array, got {type(z).__name__}")
        if z.dtype != np.float32:
            raise InvalidLatentError(f"latents must be float32, got {z.dtype}: use z.astype(numpy.float32)")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InvalidLatentError(f"latents must have shape [batch, {self.latent_dim}], got {list(z.shape)}")
        if z.shape[0] == 0:
            raise InvalidLatentError("batch is empty (0 latents): pass at least one")
        if not np.isfinite(z).all():
            raise InvalidLatentError("latents contain NaN or Inf: every value must be finite")
        return z

    def check_labels(self, labels: Labels, n: int) -> np.ndarray | None:
        """int64 [n] class indices for `labels` (None for an unconditional model); InvalidLabelError if unusable."""
        return resolve_labels(self._meta, labels, n)

    def _inputs(self, z: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray | None]:
        z = self.check_latents(z)
        return z, self.check_labels(labels, z.shape[0])

    def _run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        if self._closed:
            raise TganError("this Sampler is closed: open a new one")
        step = self._backend.max_batch
        out: np.ndarray | None = None
        for start in range(0, z.shape[0], step):
            with self._lock:  # the backend's buffers are reused: run and copy out under one lock
                rows = slice(start, start + step)
                chunk = self._backend.run(z[rows], None if labels is None else labels[rows])
                if out is None:
                    out = np.empty((z.shape[0], *chunk.shape[1:]), chunk.dtype)
                out[start:start + chunk.shape[0]] = chunk
        assert out is not None
        return out

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._backend.close()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sampler({self.source!r}, backend={self.backend!r}, providers={self.providers})"


def _choose_backend(location: ModelLocation, backend: str, device_kind: str) -> str:
    if backend != "auto":
        return backend
    if location.checkpoint is not None:
        return "torch"
    if location.engine is not None and device_kind != "cpu":
        from tgan_deploy.runtime.backends.tensorrt import tensorrt_usable

        if tensorrt_usable() or location.onnx is None:
            return "tensorrt"
    return "onnxruntime"


def _need(file: Path | None, location: ModelLocation, backend: str) -> Path:
    if file is not None:
        return file
    if backend == "torch":
        raise ModelLoadError(f"{location.path} is an export: the torch backend serves checkpoints (.pt or a run "
                             "directory); use --backend onnxruntime or tensorrt")
    if location.checkpoint is not None:
        raise ModelLoadError(f"{location.path} is a checkpoint: the {backend} backend serves exports; export it "
                             "with tgan-export, or use --backend torch")
    what = "TensorRT engine (.plan)" if backend == "tensorrt" else "ONNX file"
    raise ModelLoadError(f"{location.path} holds no {what}: export one with tgan-export, or pick another backend")


def _torch_cuda() -> bool:
    if cuda_device_count() == 0:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _on_gpu(backend: Backend) -> bool:
    return any("cuda" in p.lower() or "tensorrt" in p.lower() for p in backend.providers)

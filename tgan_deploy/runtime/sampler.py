"""`Sampler`: open an exported model or a checkpoint once, then turn seeds or latents into images fast.

    with Sampler.open("export/") as sampler:          # backend="auto": TensorRT > ORT CUDA > ORT CPU
        images = sampler.sample(seeds=[0, 1, 2])       # uint8 [3, H, W, C]
        sharper = sampler.sample(seeds=[0, 1, 2], truncation=0.7)   # BigGAN's truncation trick
        morph = sampler.interpolate(3, 17, steps=8)    # seed 3's image ... seed 17's, slerp
        same = sampler.sample(n=3, seed=0)             # seeds 0, 1, 2
        x = sampler.generate(latents([0], sampler.latent_dim))  # float32 [1, C, H, W] in [-1, 1]
        sevens = sampler.sample(seeds=[0, 1], labels="7")  # class-conditional models: by name or index

    with Sampler.open("stylegan-export/") as sampler:  # a style model (mapping.onnx + synthesis.onnx)
        images = sampler.sample(seeds=[85], psi=0.7, psi_cutoff=8)  # truncation in w, first 8 layers
        mixed = sampler.sample(seeds=[85, 86], mix_seeds=[7, 7], mix_cutoff=4)  # coarse from 85/86, rest from 7
        ws = sampler.seed_ws([85], psi=0.7)            # float32 [1, num_ws, w_dim]; sample_ws(ws) renders them

Seeds become latents by the model's `seed_rule` and images become uint8 by its `pixel_rule`
(runtime/latents.py, runtime/images.py); w-space controls: runtime/wspace.py.

One Sampler is safe to share between threads: each backend call and the copy out of its reused
buffers happen under one lock (the backend already uses every core for one batch; to serve many
small concurrent requests efficiently, put a `BatchingSampler` in front of it).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.backends import BACKENDS, Backend, StyleBackend, cuda_device_count, parse_device
from tgan_deploy.runtime.errors import InvalidLatentError, ModelLoadError
from tgan_deploy.runtime.images import from_uint8, nchw_to_nhwc, to_uint8
from tgan_deploy.runtime.labels import Label, Labels, class_name, label_record, resolve_label, resolve_labels
from tgan_deploy.runtime.latents import (
    InvalidLatentOptionError,
    check_interpolation,
    check_seeds,
    interpolate_latents,
    latents,
    seed_range,
)
from tgan_deploy.runtime.model_path import ModelLocation, locate_model
from tgan_deploy.runtime.wspace import WControls, apply_w_controls, check_w_controls, lerp_ws, refuse_w_controls

DEFAULT_INTERPOLATION = "slerp"
_NO_LABELS = object()  # _chunked's marker for a run that takes no labels (synthesis)


class Sampler:
    def __init__(self, backend: Backend | StyleBackend, metadata: ArtefactMetadata, source: str = "",
                 warmup: bool = True) -> None:
        self._backend = backend
        self._meta = metadata
        self.source = source
        self._lock = threading.Lock()
        self._closed = False
        if metadata.w_space:
            self._w_avg = np.asarray(metadata.w_avg, np.float32)
            if not hasattr(backend, "synthesize"):
                raise ModelLoadError(f"{source or 'this model'} is a style model but the {backend.name} backend got "
                                     "no mapping and synthesis graphs: open the export directory (with "
                                     "mapping.onnx and synthesis.onnx), or re-export it")
        if warmup:  # first runs allocate memory and pick kernels: pay for them before the first request
            sizes = {1, backend.max_batch} if _on_gpu(backend) else {1}
            for size in sorted(sizes):
                # real latents, not zeros: a StyleGAN mapping normalises z, and z = 0 is its one singular input
                self.generate(latents(range(size), self.latent_dim, rule=self.seed_rule),
                              0 if metadata.conditional else None)

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
        impl: Backend | StyleBackend
        if chosen == "torch":
            from tgan_deploy.runtime.backends.torch import TorchBackend

            torch_device = device_kind if device_kind != "auto" else ("cuda" if _torch_cuda() else "cpu")
            impl = TorchBackend(_need(location.checkpoint, location, "torch"), torch_device, index, max_batch,
                                threads, weights, cuda_graphs)
            metadata = impl.metadata
        elif chosen == "tensorrt":
            from tgan_deploy.runtime.backends.tensorrt import TensorRTBackend, TensorRTStyleBackend

            assert location.metadata is not None  # locate_model requires model.json beside an engine
            metadata = location.metadata
            if metadata.w_space:
                mapping, synthesis = _need_pair(location.style_engines, location, "tensorrt")
                impl = TensorRTStyleBackend(mapping, synthesis, metadata, index, max_batch)
            else:
                impl = TensorRTBackend(_need(location.engine, location, "tensorrt"), metadata, index, max_batch)
        else:
            from tgan_deploy.runtime.backends.onnxruntime import (
                OnnxRuntimeBackend,
                OnnxRuntimeStyleBackend,
                cuda_usable,
            )

            ort_device = device_kind if device_kind != "auto" else ("cuda" if cuda_usable() else "cpu")
            if location.metadata is not None and location.metadata.w_space:
                metadata = location.metadata
                mapping, synthesis = _need_pair(location.style_onnx, location, "onnxruntime")
                impl = OnnxRuntimeStyleBackend(mapping, synthesis, metadata, ort_device, index, max_batch, threads)
            else:
                ort = OnnxRuntimeBackend(_need(location.onnx, location, "onnxruntime"), location.metadata,
                                         ort_device, index, max_batch, threads)
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

    @property
    def w_space(self) -> bool:
        """A style model (mapping network to w): psi is truncation in w; mixing and w walks apply."""
        return self._meta.w_space

    @property
    def num_ws(self) -> int:
        return self._meta.num_ws

    @property
    def seed_rule(self) -> str:
        """How a seed becomes z: "tgan" or "nvlabs" (runtime/latents.py)."""
        return self._meta.seed_rule

    @property
    def pixel_rule(self) -> str:
        """How a float image becomes uint8: "tgan" or "nvlabs" (runtime/images.py)."""
        return self._meta.pixel_rule

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
        Style models: mapping, truncation at the model's default_psi, synthesis (the image generator.onnx gives).
        """
        z, rows = self._inputs(z, labels)
        if self.w_space:
            return self.synthesize(self._controlled_ws(z, rows, WControls(), None))
        out = self._chunked(self._generator.run, z, rows)
        return from_uint8(out) if out.dtype == np.uint8 else out

    def sample_latents(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Latents (and labels, as `generate` takes them) -> uint8 images [N, H, W, C] (points: float32 [N, 2]).

        Style models: at the model's default_psi (see `seed_ws` / `sample_ws` for the w controls)."""
        z, rows = self._inputs(z, labels)
        if self.w_space:
            return self.sample_ws(self._controlled_ws(z, rows, WControls(), None))
        return self._to_pixels(self._chunked(self._generator.run, z, rows))

    def sample(self, seeds: Iterable[int] | None = None, *, n: int | None = None, seed: int = 0,
               truncation: float | None = None, psi: float | None = None, labels: Labels = None,
               psi_cutoff: int | None = None, mix_seeds: int | Iterable[int] | None = None,
               mix_cutoff: int | None = None) -> np.ndarray:
        """uint8 images [N, H, W, C] (points: float32 [N, 2]) for `seeds`, or for seeds seed .. seed+n-1.

        truncation, psi: the latent controls of `tgan_deploy.runtime.latents` (None: the plain contract); for a
        style model psi is StyleGAN's truncation in w instead (None: the model's default_psi), on layers
        [0, psi_cutoff), and mix_seeds (one for all seeds or one per seed) with mix_cutoff mixes styles:
        layers [0, mix_cutoff) from each seed, the rest from its mix seed (runtime/wspace.py).
        labels: for class-conditional models (required there): one label for all seeds or one per seed, each a
        class index or name (`classes`). A seed gives the same latent under every label.
        """
        seed_list = self.seed_list(seeds, n=n, seed=seed, rule=self.seed_rule)
        if self.w_space:
            return self.sample_ws(self.seed_ws(seed_list, truncation=truncation, psi=psi, psi_cutoff=psi_cutoff,
                                               mix_seeds=mix_seeds, mix_cutoff=mix_cutoff, labels=labels))
        refuse_w_controls(psi_cutoff, mix_seeds is not None, mix_cutoff)
        return self.sample_latents(self.seed_latents(seed_list, truncation=truncation, psi=psi), labels)

    def seed_latents(self, seeds: Iterable[int], *, truncation: float | None = None,
                     psi: float | None = None) -> np.ndarray:
        """z float32 [N, latent_dim] of seeds by the model's seed rule (psi scales z: models without w only)."""
        if self.w_space and psi is not None:
            raise InvalidLatentOptionError("psi of a style model is truncation in w: pass it to seed_ws / sample, "
                                           "not to seed_latents")
        return latents(seeds, self.latent_dim, truncation=truncation, psi=psi, rule=self.seed_rule)

    def interpolate(self, seed_a: int, seed_b: int, steps: int, method: str | None = None, *,
                    truncation: float | None = None, psi: float | None = None, label: Labels = None,
                    psi_cutoff: int | None = None) -> np.ndarray:
        """`steps` images morphing seed_a's into seed_b's; the first and last equal `sample([seed_a])`, `([seed_b])`.

        method: "slerp" (the default: stays where Gaussian latents live) or "lerp"; see `interpolate_latents`.
        Style models interpolate their ws (after truncation) on a straight line: method None or "lerp".
        label: the class of every frame, for a class-conditional model.
        """
        if self.w_space:
            check_interpolation(steps, interpolation_method(self, method))
            ends = self.seed_ws([seed_a, seed_b], truncation=truncation, psi=psi, psi_cutoff=psi_cutoff,
                                labels=label)
            return self.sample_ws(lerp_ws(ends[0], ends[1], steps))
        refuse_w_controls(psi_cutoff)
        ends = self.seed_latents([seed_a, seed_b], truncation=truncation, psi=psi)
        return self.sample_latents(interpolate_latents(ends[0], ends[1], steps, interpolation_method(self, method)),
                                   label)

    # -- w-space (style models) ------------------------------------------------------------------
    def w_controls(self, psi: float | None = None, psi_cutoff: int | None = None, mix: bool = False,
                   mix_cutoff: int | None = None) -> WControls:
        """The checked w controls of one request (InvalidLatentOptionError naming the range); style models only."""
        self._need_w_space("psi_cutoff, mix seeds and w-space sampling")
        check_w_controls(self.num_ws, psi, psi_cutoff, mix, mix_cutoff)
        return WControls(psi, psi_cutoff, mix_cutoff)

    def mix_latents(self, mix_seeds: int | Iterable[int] | None, n: int, *,
                    truncation: float | None = None) -> np.ndarray | None:
        """z of the mix seeds for n rows (one mix seed for all rows, or one per row); None without mixing."""
        if mix_seeds is None:
            return None
        one = isinstance(mix_seeds, numbers.Integral)
        mix_list = [int(cast(int, mix_seeds))] * n if one else list(cast(Iterable[int], mix_seeds))
        if len(mix_list) != n:
            raise InvalidLatentOptionError(f"got {len(mix_list)} mix seeds for {n} seeds: give one mix seed for "
                                           "every seed, or one for all")
        return self.seed_latents(mix_list, truncation=truncation)

    def seed_ws(self, seeds: Iterable[int], *, truncation: float | None = None, psi: float | None = None,
                psi_cutoff: int | None = None, mix_seeds: int | Iterable[int] | None = None,
                mix_cutoff: int | None = None, labels: Labels = None) -> np.ndarray:
        """ws float32 [N, num_ws, w_dim] of seeds with the w controls applied (what `sample` renders)."""
        controls = self.w_controls(psi, psi_cutoff, mix_seeds is not None, mix_cutoff)
        z = self.seed_latents(seeds, truncation=truncation)
        z, rows = self._inputs(z, labels)
        return self._controlled_ws(z, rows, controls, self.mix_latents(mix_seeds, len(z), truncation=truncation))

    def map(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Latents (and labels) -> untruncated ws float32 [N, num_ws, w_dim]: the mapping network alone."""
        self._need_w_space("the mapping network")
        z, rows = self._inputs(z, labels)
        return self._chunked(self._style.map, z, rows)

    def apply_w_controls(self, ws: np.ndarray, mix_ws: np.ndarray | None, controls: WControls) -> np.ndarray:
        """Mapping output (and the mix seeds' mapping output) -> the ws synthesis gets (runtime/wspace.py)."""
        return apply_w_controls(ws, mix_ws, self._w_avg, self._meta.default_psi, controls)

    def synthesize(self, ws: np.ndarray) -> np.ndarray:
        """ws float32 [N, num_ws, w_dim] -> float32 images [N, C, H, W] (uint8 exports: mapped back to [-1, 1])."""
        out = self._chunked(self._style.synthesize, self.check_ws(ws))
        return from_uint8(out) if out.dtype == np.uint8 else out

    def sample_ws(self, ws: np.ndarray) -> np.ndarray:
        """ws -> uint8 images [N, H, W, C] by the model's pixel rule."""
        return self._to_pixels(self._chunked(self._style.synthesize, self.check_ws(ws)))

    def check_ws(self, ws: Any) -> np.ndarray:
        """Reject ws the synthesis cannot take: not float32 [N >= 1, num_ws, w_dim], or NaN/Inf."""
        self._need_w_space("ws")
        shape = [self.num_ws, self._meta.w_dim]
        if not isinstance(ws, np.ndarray) or ws.dtype != np.float32 or ws.ndim != 3 or list(ws.shape[1:]) != shape:
            got = f"{ws.dtype} {list(ws.shape)}" if isinstance(ws, np.ndarray) else type(ws).__name__
            raise InvalidLatentError(f"ws must be float32 [batch, {shape[0]}, {shape[1]}], got {got}")
        if ws.shape[0] == 0 or not np.isfinite(ws).all():
            raise InvalidLatentError("ws must hold at least one row and finite values only")
        return ws

    def _controlled_ws(self, z: np.ndarray, rows: np.ndarray | None, controls: WControls,
                       mix_z: np.ndarray | None) -> np.ndarray:
        """One mapping pass over z and the mix latents (same labels), then the w controls."""
        both = z if mix_z is None else np.concatenate([z, mix_z])
        both_rows = rows if rows is None or mix_z is None else np.concatenate([rows, rows])
        ws = self._chunked(self._style.map, both, both_rows)
        return self.apply_w_controls(ws[:len(z)], None if mix_z is None else ws[len(z):], controls)

    def _need_w_space(self, what: str) -> None:
        if not self.w_space:
            raise InvalidLatentOptionError(f"{what} need a style model (a mapping network to w); this model has "
                                           "none (psi here scales z)")

    @property
    def _style(self) -> StyleBackend:
        return cast(StyleBackend, self._backend)

    @property
    def _generator(self) -> Backend:
        return cast(Backend, self._backend)

    def _to_pixels(self, out: np.ndarray) -> np.ndarray:
        if self.kind == "points":
            return out
        return nchw_to_nhwc(out if out.dtype == np.uint8 else to_uint8(out, self.pixel_rule))

    @staticmethod
    def seed_list(seeds: Iterable[int] | None = None, *, n: int | None = None, seed: int = 0,
                  rule: str = "tgan") -> list[int]:
        """The seeds a `sample` call means: `seeds` as given, or seed, seed+1, ..., seed+n-1 (checked under `rule`)."""
        if seeds is not None:
            if n is not None:
                raise TganError("pass either seeds or n (with seed), not both")
            return check_seeds(seeds, rule)
        if n is None:
            raise TganError("pass seeds=[...] or n=... (with seed=...)")
        return list(seed_range(seed, n, rule))

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

    def _chunked(self, run: Callable[..., np.ndarray], rows: np.ndarray, labels: Any = _NO_LABELS) -> np.ndarray:
        """run(rows[chunk][, labels[chunk]]) over chunks of max_batch rows, each run and copied out under the lock
        (the backend's buffers are reused); labels _NO_LABELS: run takes the rows alone."""
        if self._closed:
            raise TganError("this Sampler is closed: open a new one")
        step = self._backend.max_batch
        out: np.ndarray | None = None
        for start in range(0, rows.shape[0], step):
            chunk_rows = slice(start, start + step)
            args: list[Any] = [rows[chunk_rows]]
            if labels is not _NO_LABELS:
                args.append(None if labels is None else labels[chunk_rows])
            with self._lock:
                chunk = run(*args)
                if out is None:
                    out = np.empty((rows.shape[0], *chunk.shape[1:]), chunk.dtype)
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


def interpolation_method(sampler: Sampler, method: str | None) -> str:
    """The interpolation a model uses: slerp of z by default; style models interpolate ws by lerp only."""
    if not sampler.w_space:
        return DEFAULT_INTERPOLATION if method is None else method
    if method not in (None, "lerp"):
        raise InvalidLatentOptionError(f"a style model interpolates in w on straight lines: use method lerp (or "
                                       f"leave it out), not {method!r}")
    return "lerp"


def _choose_backend(location: ModelLocation, backend: str, device_kind: str) -> str:
    if backend != "auto":
        return backend
    if location.checkpoint is not None:
        return "torch"
    engine = location.style_engines if location.metadata is not None and location.metadata.w_space else location.engine
    if engine is not None and device_kind != "cpu":
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


def _need_pair(pair: tuple[Path, Path] | None, location: ModelLocation, backend: str) -> tuple[Path, Path]:
    if pair is not None:
        return pair
    what = "TensorRT engines (files roles mapping_tensorrt, synthesis_tensorrt)" if backend == "tensorrt" else \
        "ONNX graphs (mapping.onnx, synthesis.onnx)"
    raise ModelLoadError(f"{location.path} is a style model without its mapping and synthesis {what}: re-export it "
                         "(with --trt for TensorRT), or pick another backend")


def _torch_cuda() -> bool:
    if cuda_device_count() == 0:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _on_gpu(backend: Backend | StyleBackend) -> bool:
    return any("cuda" in p.lower() or "tensorrt" in p.lower() for p in backend.providers)

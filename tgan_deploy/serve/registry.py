"""Which models a server serves: names found once at start, each mapped to a Sampler and its BatchingSampler.

A model's name comes from the folder it was found in and must match NAME_PATTERN; a request's name is
only ever a key into this mapping, never joined into a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

from tgan_deploy.artefact import IMAGE_OUTPUT, MODEL_JSON, POINTS_OUTPUT
from tgan_deploy.errors import TganError
from tgan_deploy.io import file_sha256
from tgan_deploy.runtime.batching import BatchingSampler
from tgan_deploy.runtime.sampler import Sampler

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit"


class UnknownModelError(TganError, LookupError):
    """A request named a model this server does not serve."""


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    backend: str = "auto"
    device: str = "auto"
    max_batch: int = 64
    threads: int | None = None
    max_queue: int = 256


@dataclasses.dataclass
class ServedModel:
    name: str
    path: Path
    sampler: Sampler
    batcher: BatchingSampler
    artefact_sha256: str  # of the model file served: with seed and options it names an image for ever

    @property
    def image_shape(self) -> list[int]:
        """One output row's shape: [H, W, C] for images, [2] for points."""
        meta = self.sampler.metadata
        if self.sampler.kind == "points":
            return [2]
        return [int(meta["resolution"]), int(meta["resolution"]), int(meta["channels"])]

    @property
    def output_name(self) -> str:
        """The protocol output's name, as in the artefact: "image" or "points"."""
        return POINTS_OUTPUT if self.sampler.kind == "points" else IMAGE_OUTPUT

    def close(self) -> None:
        self.batcher.close()
        self.sampler.close()


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise TganError(f"model name {name!r} is not allowed ({NAME_RULE}): pass --name or rename the folder")
    return name


def discover(model: Path, name: str | None = None) -> dict[str, Path]:
    """name -> export path: MODEL itself if it is a model, else each subfolder of it holding a model.json."""
    model = Path(model)
    if not model.exists():
        raise TganError(f"{model} does not exist: pass an export directory or a folder of exports")
    if not model.is_dir() or (model / MODEL_JSON).is_file() or (model / "checkpoints").is_dir():
        return {check_name(name or model.resolve().stem): model}
    found = {check_name(sub.name): sub for sub in sorted(model.iterdir())
             if sub.is_dir() and (sub / MODEL_JSON).is_file()}
    if not found:
        raise TganError(f"{model} holds no export (no {MODEL_JSON} in it or in its subfolders): pass the folder "
                        "tgan-export wrote, or a folder of such folders")
    if name is not None:
        raise TganError("--name names a single model: with a folder of exports each is served under its folder's name")
    return found


def open_model(name: str, path: Path, options: SamplerOptions,
               on_batch: Callable[[int], None] | None = None) -> ServedModel:
    sampler = Sampler.open(path, backend=options.backend, device=options.device, max_batch=options.max_batch,
                           threads=options.threads)  # warms up: the first request pays nothing extra
    path = Path(path)
    digest = hashlib.sha256()
    for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file_sha256(f).encode())
    batcher = BatchingSampler(sampler, max_batch=options.max_batch, max_queue=options.max_queue, on_batch=on_batch)
    return ServedModel(name, path, sampler, batcher, digest.hexdigest())


class Registry:
    """The served models. Names are known at once; models load (and warm up) in `load()`, after which `ready`."""

    def __init__(self, paths: dict[str, Path], options: SamplerOptions,
                 on_batch: Callable[[str, int], None] | None = None) -> None:
        self.paths = dict(paths)
        self.options = options
        self._on_batch = on_batch
        self._models: dict[str, ServedModel] = {}
        self._ready = threading.Event()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def load(self) -> None:
        """Open every model; ready only if all opened (a failure raises, and ready stays False)."""
        for name, path in self.paths.items():
            self._models[name] = open_model(name, path, self.options, self._batch_hook(name))
        self._ready.set()

    def _batch_hook(self, name: str) -> Callable[[int], None] | None:
        on_batch = self._on_batch
        return None if on_batch is None else (lambda images: on_batch(name, images))

    def get(self, name: str) -> ServedModel | None:
        """The loaded model; None while still loading. UnknownModelError for a name not served."""
        if name not in self.paths:
            raise UnknownModelError(f"unknown model {name[:80]!r}: this server serves {', '.join(self.paths)}")
        return self._models.get(name)

    def loaded(self) -> list[ServedModel]:
        return list(self._models.values())

    def close(self) -> None:
        for model in self._models.values():
            model.close()

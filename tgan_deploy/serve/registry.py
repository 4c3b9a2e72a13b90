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
from tgan_deploy.run_layout import is_run_dir
from tgan_deploy.runtime.batching import BatchingSampler
from tgan_deploy.runtime.sampler import Sampler

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit"


class UnknownModelError(TganError, LookupError):
    """A request named a model this server does not serve."""


class ModelUnloadedError(TganError):
    """A request named a model that was unloaded through the repository API."""


class ReloadError(TganError):
    """A (re)load of a model from disk failed; the version that was serving (if any) still serves."""


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
    if not model.is_dir() or (model / MODEL_JSON).is_file() or is_run_dir(model):
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
    """The served models. Names are known at once; models load (and warm up) in `load()`, after which `ready`.

    `reload(name)` opens the export on disk again beside the serving version, then swaps it in: requests
    that already hold the old version finish on it (it is closed `grace_s` later, its queue drained first);
    a broken export raises ReloadError and leaves the old version serving. `unload(name)` stops serving it.
    """

    def __init__(self, paths: dict[str, Path], options: SamplerOptions,
                 on_batch: Callable[[str, int], None] | None = None, grace_s: float = 5.0) -> None:
        self.paths = dict(paths)
        self.options = options
        self.grace_s = grace_s
        self._on_batch = on_batch
        self._models: dict[str, ServedModel] = {}
        self._unloaded: set[str] = set()
        self._reasons: dict[str, str] = {}  # name -> why its last load failed
        self._lock = threading.Lock()  # one (re)load at a time; reads of _models need none (one dict lookup)
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

    def reload(self, name: str) -> ServedModel:
        """Load `name` from disk again (or again after an unload) and swap it in; ReloadError if it fails."""
        self._check_known(name)
        with self._lock:
            try:
                new = open_model(name, self.paths[name], self.options, self._batch_hook(name))
            except Exception as exc:  # any failure to open: the old version keeps serving
                reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                self._reasons[name] = reason
                raise ReloadError(f"loading {name!r} from {self.paths[name]} failed ({reason}); "
                                  + ("the previous version still serves" if name in self._models else
                                     "it stays unloaded")) from exc
            old = self._models.get(name)
            self._models[name] = new
            self._unloaded.discard(name)
            self._reasons.pop(name, None)
        if old is not None:
            self._retire(old)
        return new

    def unload(self, name: str) -> None:
        self._check_known(name)
        with self._lock:
            old = self._models.pop(name, None)
            self._unloaded.add(name)
        if old is not None:
            self._retire(old)

    def _retire(self, model: ServedModel) -> None:
        """Close a replaced version once the requests that hold it are done (they got it before the swap)."""
        timer = threading.Timer(self.grace_s, model.close)
        timer.daemon = True
        timer.start()

    def index(self) -> list[dict[str, str]]:
        """The OIP repository index: every model with its state (READY / UNAVAILABLE / LOADING) and reason."""
        entries = []
        for name in self.paths:
            state = "READY" if name in self._models else "UNAVAILABLE" if name in self._unloaded else "LOADING"
            reason = self._reasons.get(name, "unloaded" if name in self._unloaded else "")
            entries.append({"name": name, "version": "1", "state": state, "reason": reason})
        return entries

    def _check_known(self, name: str) -> None:
        if name not in self.paths:
            raise UnknownModelError(f"unknown model {name[:80]!r}: this server serves {', '.join(self.paths)}")

    def _batch_hook(self, name: str) -> Callable[[int], None] | None:
        on_batch = self._on_batch
        return None if on_batch is None else (lambda images: on_batch(name, images))

    def get(self, name: str) -> ServedModel | None:
        """The loaded model; None while still loading. UnknownModelError for a name not served,
        ModelUnloadedError for one unloaded through the repository API."""
        self._check_known(name)
        model = self._models.get(name)
        if model is None and name in self._unloaded:
            raise ModelUnloadedError(f"model {name!r} is unloaded: load it with POST /v2/repository/models/{name}/load")
        return model

    def loaded(self) -> list[ServedModel]:
        return list(self._models.values())

    def close(self) -> None:
        for model in list(self._models.values()):
            model.close()

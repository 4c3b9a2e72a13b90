"""`BatchingSampler`: many small concurrent requests -> few large batches (a continuous micro-batcher).

    with BatchingSampler(sampler, max_batch=32) as batcher:
        future = batcher.submit([7, 8])        # from any thread
        images = future.result(timeout=5)       # uint8 [2, H, W, C]: exactly seeds 7 and 8
        cats = batcher.submit([7], labels="cat")  # class-conditional models: requests of any labels share batches

Semantics (docs/runtime.md has the full story):
- Grouping (continuous batching, the default `max_delay_ms=0`): one worker thread, as soon as it is free,
  takes the oldest request plus every request queued behind it, up to `max_batch` images. Requests that
  arrive while a batch runs form the next one, so no request ever waits for a timer. With
  `max_delay_ms > 0` the worker also waits up to that long after taking the first request for more to
  arrive. A request that would overflow the batch waits for the next one (requests are never split across
  batches; one larger than `max_batch` runs alone, chunked by the Sampler). Requests run in arrival order.
- Validation happens in `submit` / `submit_latents`, in the caller's thread: bad input raises there and
  never reaches a batch.
- Failure isolation: if a batch of several requests fails, each request is retried alone, so only a
  request that fails by itself gets the exception; the others get their images.
- Back-pressure: at most `max_queue` requests wait. `submit` then blocks (`block=True`, default) up to
  `timeout` seconds and raises QueueFullError, or raises at once with `block=False`.
- Shutdown: `close()` refuses new requests (BatcherClosedError); pending ones are completed
  (default) or failed with BatcherClosedError (`cancel_pending=True`); it never waits for ever
  (`timeout`). Cancelled futures are skipped.
- Style models (runtime/wspace.py): a request carries its z (and its mix seeds' z) and its w controls; a
  batch runs ONE mapping pass over every request's latents, applies each request's controls to its own
  rows, then ONE synthesis pass, so requests with different psi, cutoffs or mix seeds share batches.
- Observing: `batches_run`, `images_run`, `queue_depth`, and `on_batch(images)`, called by the worker
  after each batch (e.g. to fill a batch-size histogram).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import cast

import numpy as np

from tgan_deploy.errors import TganError
from tgan_deploy.runtime.errors import BatcherClosedError, QueueFullError
from tgan_deploy.runtime.labels import Labels
from tgan_deploy.runtime.latents import InvalidLatentOptionError
from tgan_deploy.runtime.sampler import Sampler
from tgan_deploy.runtime.wspace import WControls, refuse_w_controls

LOG = logging.getLogger(__name__)


def _labels(parts: list[np.ndarray | None]) -> np.ndarray | None:
    """The labels of concatenated requests (None for an unconditional model, whose requests all have None)."""
    return None if parts[0] is None else np.concatenate(cast(list[np.ndarray], parts))


@dataclasses.dataclass
class _Request:
    z: np.ndarray
    labels: np.ndarray | None  # int64 [len(z)] for a class-conditional model, else None
    future: Future[np.ndarray]
    controls: WControls | None = None  # style models: the request's w controls
    mix_z: np.ndarray | None = None  # style models that mix: the mix seeds' z, one row per row of z
    ws: np.ndarray | None = None  # style models: ws given directly (z is then empty and unused)

    @property
    def rows(self) -> int:
        return len(self.z) if self.ws is None else len(self.ws)


class BatchingSampler:
    def __init__(self, sampler: Sampler, max_batch: int = 32, max_delay_ms: float = 0.0,
                 max_queue: int = 1024, on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_delay_ms < 0:
            raise TganError("max_batch and max_queue must be >= 1 and max_delay_ms >= 0")
        self.sampler = sampler
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self._queue: collections.deque[_Request] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._cancel_pending = False
        self.batches_run = 0  # statistics: batches executed and the images in them
        self.images_run = 0
        self._on_batch = on_batch
        self._worker = threading.Thread(target=self._serve, name="tgan-batcher", daemon=True)
        self._worker.start()

    # -- callers -----------------------------------------------------------------------------------
    def submit(self, seeds: Iterable[int], *, truncation: float | None = None, psi: float | None = None,
               labels: Labels = None, block: bool = True, timeout: float | None = None,
               psi_cutoff: int | None = None, mix_seeds: int | Iterable[int] | None = None,
               mix_cutoff: int | None = None) -> Future[np.ndarray]:
        """Queue one request; its Future gives uint8 [len(seeds), H, W, C] (points: float32 [len, 2]).

        truncation, psi, psi_cutoff, mix_seeds, mix_cutoff: as `Sampler.sample` takes them; labels too.
        Requests with different controls or labels share batches. Raises InvalidSeedError /
        InvalidLatentOptionError / InvalidLabelError for bad input, QueueFullError when the queue stays full
        (see module doc), BatcherClosedError after close().
        """
        # computing the latents and labels here validates them: a bad request never joins a batch (numpy only:
        # the mapping network runs in the worker, batched)
        sampler = self.sampler
        if not sampler.w_space:
            refuse_w_controls(psi_cutoff, mix_seeds is not None, mix_cutoff)
            z = sampler.seed_latents(sampler.seed_list(seeds, rule=sampler.seed_rule), truncation=truncation, psi=psi)
            return self._enqueue(_Request(z, sampler.check_labels(labels, len(z)), Future()), block, timeout)
        controls = sampler.w_controls(psi, psi_cutoff, mix_seeds is not None, mix_cutoff)
        z = sampler.seed_latents(sampler.seed_list(seeds, rule=sampler.seed_rule), truncation=truncation)
        mix_z = sampler.mix_latents(mix_seeds, len(z), truncation=truncation)
        return self._enqueue(_Request(z, sampler.check_labels(labels, len(z)), Future(), controls, mix_z), block,
                             timeout)

    def submit_latents(self, z: np.ndarray, labels: Labels = None, *, block: bool = True,
                       timeout: float | None = None, psi: float | None = None,
                       psi_cutoff: int | None = None) -> Future[np.ndarray]:
        """Queue latents float32 [n, latent_dim] (and labels, as `Sampler.sample_latents` takes them); same Future
        as `submit`. psi, psi_cutoff: style models only (truncation in w; None: the model's default_psi).

        Raises InvalidLatentError for a wrong dtype or shape, an empty batch or NaN/Inf, InvalidLabelError for
        unusable labels (in this thread).
        """
        z = self.sampler.check_latents(z)
        controls = self.sampler.w_controls(psi, psi_cutoff) if self.sampler.w_space else None
        if controls is None and (psi is not None or psi_cutoff is not None):
            raise InvalidLatentOptionError("psi and psi_cutoff of latents given directly need a style model "
                                           "(truncation in w); scale z yourself for this one")
        return self._enqueue(_Request(z, self.sampler.check_labels(labels, len(z)), Future(), controls), block,
                             timeout)

    def submit_ws(self, ws: np.ndarray, *, block: bool = True, timeout: float | None = None) -> Future[np.ndarray]:
        """Style models: queue ws float32 [n, num_ws, w_dim] (e.g. a walk in w) for synthesis; same Future as
        `submit`. Raises InvalidLatentError for ws of the wrong shape or with NaN/Inf (in this thread)."""
        ws = self.sampler.check_ws(ws)
        no_z = np.empty((0, self.sampler.latent_dim), np.float32)
        return self._enqueue(_Request(no_z, None, Future(), ws=ws), block, timeout)

    @property
    def queue_depth(self) -> int:
        """Requests waiting (not counting the batch that is running)."""
        return len(self._queue)

    def _enqueue(self, request: _Request, block: bool, timeout: float | None) -> Future[np.ndarray]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closing:
                    raise BatcherClosedError("this BatchingSampler is closed: submit to a new one")
                if len(self._queue) < self.max_queue:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if not block or (remaining is not None and remaining <= 0):
                    raise QueueFullError(f"the batcher's queue is full ({self.max_queue} requests waiting): "
                                         "retry later, or raise max_queue")
                self._cond.wait(remaining)
            self._queue.append(request)
            self._cond.notify_all()
        return request.future

    def sample(self, seeds: Iterable[int], timeout: float | None = None, *, truncation: float | None = None,
               psi: float | None = None, labels: Labels = None, psi_cutoff: int | None = None,
               mix_seeds: int | Iterable[int] | None = None, mix_cutoff: int | None = None) -> np.ndarray:
        """submit + wait: the images of `seeds` (under `labels`), computed in a shared batch."""
        return self.submit(seeds, truncation=truncation, psi=psi, labels=labels, psi_cutoff=psi_cutoff,
                           mix_seeds=mix_seeds, mix_cutoff=mix_cutoff).result(timeout)

    # -- the worker ----------------------------------------------------------------------------------
    def _next_batch(self) -> list[_Request] | None:
        """Block for the oldest request, then take what queued behind it (waiting up to max_delay for more) until
        max_batch images; None: stop."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait(0.1)
            if self._cancel_pending:
                return None
            batch = [self._queue.popleft()]
            size = batch[0].rows
            deadline = time.monotonic() + self.max_delay
            while size < self.max_batch:
                if self._queue:
                    if size + self._queue[0].rows > self.max_batch:
                        break  # would overflow: it opens the next batch
                    request = self._queue.popleft()
                    batch.append(request)
                    size += request.rows
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._cond.wait(remaining)
            self._cond.notify_all()  # room in the queue: wake blocked submitters
        return batch

    def _serve(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                live = [r for r in batch if r.future.set_running_or_notify_cancel()]
                if live:
                    self._run(live)
        finally:  # closing (or an unexpected error here): no request is left waiting
            self._fail_pending(BatcherClosedError("the BatchingSampler was closed before this request ran"))

    def _run(self, batch: list[_Request]) -> None:
        try:
            images = self._style_images(batch) if self.sampler.w_space else self.sampler.sample_latents(
                np.concatenate([r.z for r in batch]), _labels([r.labels for r in batch]))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for request in batch:  # isolate: only a request that fails alone gets an exception
                self._run([request])
            return
        self.batches_run += 1
        self.images_run += len(images)
        start = 0
        for request in batch:
            stop = start + request.rows
            request.future.set_result(images[start:stop])  # a view per caller: each gets its own rows only
            start = stop
        if self._on_batch is not None:  # after the callers have their images; a failing hook never stops the worker
            try:
                self._on_batch(len(images))
            except Exception:
                LOG.exception("BatchingSampler on_batch callback failed")

    def _style_images(self, batch: list[_Request]) -> np.ndarray:
        """One mapping pass over every latent of the batch (rows, then mix rows), each request's controls on its
        rows, one synthesis pass."""
        mapped = [r for r in batch if r.ws is None]
        ws = np.empty((0,), np.float32)
        if mapped:
            z_parts = [r.z for r in mapped] + [r.mix_z for r in mapped if r.mix_z is not None]
            label_parts = [r.labels for r in mapped] + [r.labels for r in mapped if r.mix_z is not None]
            ws = self.sampler.map(np.concatenate(z_parts), _labels(label_parts))
        own, mixes, parts = 0, sum(len(r.z) for r in mapped), []
        for r in batch:
            if r.ws is not None:
                parts.append(r.ws)
                continue
            mix_ws = None
            if r.mix_z is not None:
                mix_ws, mixes = ws[mixes:mixes + len(r.z)], mixes + len(r.z)
            assert r.controls is not None
            parts.append(self.sampler.apply_w_controls(ws[own:own + len(r.z)], mix_ws, r.controls))
            own += len(r.z)
        return self.sampler.sample_ws(np.concatenate(parts))

    def _fail_pending(self, error: Exception) -> None:
        with self._cond:
            pending = list(self._queue)
            self._queue.clear()
            self._closing = True
            self._cond.notify_all()
        for request in pending:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(error)

    # -- lifetime ------------------------------------------------------------------------------------
    def close(self, cancel_pending: bool = False, timeout: float | None = 30.0) -> None:
        """Stop accepting requests; finish pending ones (or fail them with cancel_pending=True); join.

        Does not close the wrapped Sampler. Returns after at most `timeout` seconds even if a batch is
        still running; the worker is a daemon thread and fails whatever is left when it finishes.
        """
        with self._cond:
            self._closing = True
            self._cancel_pending = self._cancel_pending or cancel_pending
            self._cond.notify_all()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closing

    def __enter__(self) -> BatchingSampler:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

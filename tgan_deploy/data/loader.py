"""An infinite, resumable stream of real batches for the trainer.

Exact resume: the batch at global step `s` depends only on (dataset, batch size, seed, rank, world size, s).
Epoch `e` is the order `torch.randperm(N, generator=seed + e)` (DistributedSampler's rule, so every rank
agrees on it), rank `r` takes every `world_size`-th index of it from position `r`, and cuts that into
`steps_per_epoch` batches. So step `s` is batch `s % steps_per_epoch` of epoch `s // steps_per_epoch`, and
`stream.batches(start_step=s)` starts there directly (it slices index lists; no data is read to skip).
A resumed run that passes the number of real batches it has consumed sees exactly the batches the
uninterrupted run would have seen. Worker processes only load; they never decide the order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tgan_deploy.errors import DataError


class BatchStream:
    """Iterate `stream.batches(start_step)` (or `iter(stream)`, from step 0): an endless sequence of batches."""

    def __init__(self, dataset: Dataset[Any], batch_size: int, *, seed: int, shuffle: bool = True,
                 workers: int = 0, pin_memory: bool | None = None, rank: int = 0, world_size: int = 1,
                 drop_last: bool = True) -> None:
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}: set optim.batch_size")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is not in 0..{world_size - 1}: check the launcher's RANK/WORLD_SIZE")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.workers = workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory and torch.cuda.is_available()
        self.drop_last = drop_last
        # DistributedSampler with explicit rank/world size needs no process group; world size 1 is the
        # single-process case, so one code path serves both.
        self._sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        per_rank = len(self._sampler)
        self.steps_per_epoch = per_rank // batch_size if drop_last else -(-per_rank // batch_size)
        if self.steps_per_epoch == 0:
            raise DataError(f"the data has {len(self._sampler) * world_size} items for {world_size} process(es), "
                            f"fewer than one batch of {batch_size} each: lower optim.batch_size or add data")

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's dataset indices for `epoch`, in order (before cutting into batches)."""
        self._sampler.set_epoch(epoch)
        return list(self._sampler)

    def batch_indices(self, start_step: int = 0) -> Iterator[list[int]]:
        """Endless index batches from global step `start_step` on."""
        if start_step < 0:
            raise DataError(f"start step must be >= 0, got {start_step}")
        epoch, offset = divmod(start_step, self.steps_per_epoch)
        while True:
            order = self.epoch_indices(epoch)
            for b in range(offset, self.steps_per_epoch):
                yield order[b * self.batch_size:(b + 1) * self.batch_size]
            epoch, offset = epoch + 1, 0

    def batches(self, start_step: int = 0) -> Iterator[Any]:
        """Endless batches (float32 [B, ...], or (items, labels) of a `labelled()` dataset) from global step
        `start_step` on; see the module docstring."""
        loader = DataLoader(self.dataset, batch_sampler=_IndexBatches(self, start_step), num_workers=self.workers,
                            pin_memory=self.pin_memory, collate_fn=_as_is)
        return iter(loader)

    def __iter__(self) -> Iterator[Any]:
        return self.batches(0)


class _IndexBatches:
    """A batch sampler for DataLoader: endless, starting at a step (DataLoader never asks its length)."""

    def __init__(self, stream: BatchStream, start_step: int) -> None:
        self.stream, self.start_step = stream, start_step

    def __iter__(self) -> Iterator[list[int]]:
        return self.stream.batch_indices(self.start_step)


def _as_is(batch: Any) -> Any:
    # The datasets build whole batches in `__getitems__` (one fancy-index, no per-item collation).
    return batch


def make_loader(dataset: Dataset[Any], batch_size: int, *, seed: int, shuffle: bool = True,
                workers: int = 0, pin_memory: bool | None = None, distributed: bool = False,
                rank: int | None = None, world_size: int | None = None, drop_last: bool = True) -> BatchStream:
    """A resumable endless batch stream; `batch_size` is per process. Use the same `seed` on every rank.

    With `distributed=True`, rank and world size default to torch.distributed's (the process group must be
    initialised); each rank gets a disjoint shard of every epoch. `pin_memory=None` pins when CUDA is there.
    """
    if distributed:
        import torch.distributed as dist

        if rank is None or world_size is None:
            if not dist.is_available() or not dist.is_initialized():
                raise DataError("distributed loading needs an initialised process group (torchrun) "
                                "or explicit rank and world_size")
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    else:
        rank, world_size = 0, 1
    return BatchStream(dataset, batch_size, seed=seed, shuffle=shuffle, workers=workers, pin_memory=pin_memory,
                       rank=rank, world_size=world_size, drop_last=drop_last)

"""`TrainingData`: the one in-memory (or memory-mapped) dataset type every loader returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

Kind = Literal["image", "points"]


class TrainingData(Dataset[torch.Tensor]):
    """Items are float32 tensors: images [C, R, R] in [-1, 1], or points [2].

    `kind` is "image" or "points"; `source` the string it was loaded from; `skipped` how many unreadable
    files were left out (image folders only). Labelled data also has `labels` (int64 [N], indices into
    `classes`, the class names); `labelled()` is the view whose batches are (items, labels).
    """

    def __init__(self, array: np.ndarray, kind: Kind, source: str, skipped: int = 0,
                 labels: np.ndarray | None = None, classes: Sequence[str] = ()) -> None:
        self.array = array  # uint8 [N, C, R, R] (possibly np.memmap) or float32 [N, 2]
        self.kind: Kind = kind
        self.source = source
        self.skipped = skipped
        if (labels is None) != (not classes) or (labels is not None and labels.shape != (len(array),)):
            raise ValueError("labels must be int64 [N] with their class names, or both absent")
        self.labels = labels
        self.classes = list(classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labelled(self) -> LabelledData:
        if self.labels is None:
            raise ValueError(f"{self.source} has no labels")
        return LabelledData(self)

    def subset(self, n: int) -> TrainingData:
        """n items (data.limit): the first n of one fixed shuffle (seed 0), in data-set order; labels kept.

        Not literally the first n: sets stored by class (builtin:mnist5k is) would keep one class. The fixed
        order makes the subsets nested (the 500 are among the 5,000) and the same on every run."""
        if n <= 0 or n >= len(self):
            return self
        rows = np.sort(np.random.default_rng(0).permutation(len(self))[:n])
        labels = None if self.labels is None else self.labels[rows]
        return TrainingData(np.asarray(self.array[rows]), self.kind, self.source, self.skipped, labels,
                            self.classes if labels is not None else ())

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])

    def __repr__(self) -> str:
        what = "points" if self.kind == "points" else "images"
        skipped = f", {self.skipped} unreadable file(s) skipped" if self.skipped else ""
        classes = f", {self.num_classes} classes" if self.classes else ""
        return f"{self.source}: {len(self)} {what} of shape {list(self.item_shape)}{classes}{skipped}"

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        """A whole batch at once (DataLoader calls this when it exists): float32 [B, ...]."""
        batch = torch.from_numpy(np.ascontiguousarray(self.array[np.asarray(indices, dtype=np.int64)]))
        if self.kind == "points":
            return batch
        return batch.float().div_(127.5).sub_(1.0)  # 0 -> -1, 255 -> 1 exactly

    # A memory-mapped cache must reach spawned DataLoader workers as a file name, not as a pickled copy.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.array, np.memmap) and self.array.filename is not None:
            state["array"] = ("memmap", self.array.filename)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["array"], tuple):
            state["array"] = np.load(state["array"][1], mmap_mode="r")
        self.__dict__.update(state)


class LabelledData(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The batches of a labelled TrainingData as (items float32 [B, ...], labels int64 [B])."""

    def __init__(self, data: TrainingData) -> None:
        assert data.labels is not None
        self.data, self.labels = data, data.labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        items, labels = self.__getitems__([index])
        return items[0], labels[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.from_numpy(np.ascontiguousarray(self.labels[np.asarray(indices, dtype=np.int64)]))
        return self.data.__getitems__(indices), labels

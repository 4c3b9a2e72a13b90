"""Class labels of conditional models: one function turns what a user gives into the `label` input.

A label is a class index (0 .. num_classes-1) or a class name from the artefact's `classes`. A string is a
name first: with classes named "0".."9" (the built-in digits) "7" is the class named "7"; a string of digits
that names no class is read as an index. The seed -> latent contract does not involve labels: the same seed
gives the same `z` under every label. The CLI, the bulk writer, the service and the Ray adapter all come
through `resolve_labels`, so a label means the same everywhere and is refused in the same words.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.runtime.errors import InvalidLabelError

Label = int | str
Labels = Label | Sequence[Label] | np.ndarray | None


def resolve_labels(meta: ArtefactMetadata, labels: Labels, n: int) -> np.ndarray | None:
    """int64 [n] class indices for `labels` (one label for all n rows, or one per row); None if unconditional.

    InvalidLabelError, naming the valid classes: labels for an unconditional model, none for a conditional one,
    an unknown name, an index out of range, or a count that is neither 1 nor n.
    """
    if not meta.conditional:
        if labels is None:
            return None
        raise InvalidLabelError("this model is unconditional (it has no classes): sample it without a label")
    if labels is None:
        raise InvalidLabelError(f"this model is class-conditional: give a label, {valid_classes(meta)}")
    if isinstance(labels, (str, numbers.Integral)) or (isinstance(labels, np.ndarray) and labels.ndim == 0):
        return np.full(n, resolve_label(meta, labels.item() if isinstance(labels, np.ndarray) else labels), np.int64)
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
        if labels.ndim != 1 or len(labels) not in (1, n):
            raise InvalidLabelError(f"got {labels.size} labels for {n} images: give one label, or one per image")
        bad = labels[(labels < 0) | (labels >= meta.num_classes)]
        if bad.size:
            resolve_label(meta, int(bad[0]))  # raises, naming the classes
        return np.broadcast_to(labels.astype(np.int64), (n,)).copy()
    items = list(labels)  # type: ignore[arg-type]  # a sequence: the scalar cases returned above
    if len(items) not in (1, n):
        raise InvalidLabelError(f"got {len(items)} labels for {n} images: give one label, or one per image")
    indices = np.array([resolve_label(meta, item) for item in items], np.int64)
    return np.broadcast_to(indices, (n,)).copy()


def resolve_label(meta: ArtefactMetadata, label: Any) -> int:
    """One label (index or class name) -> its class index; InvalidLabelError naming the valid classes."""
    if isinstance(label, str):
        if label in meta.classes:
            return meta.classes.index(label)
        digits = label.removeprefix("-")  # "-1" names no class: say it is out of range, not an unknown name
        if not (digits.isascii() and digits.isdigit()):
            raise InvalidLabelError(f"unknown class {label[:40]!r}: {valid_classes(meta)}")
        label = int(label)
    if isinstance(label, bool) or not isinstance(label, numbers.Integral):
        raise InvalidLabelError(f"a label must be a class index or name, got {type(label).__name__}: "
                                f"{valid_classes(meta)}")
    if not 0 <= int(label) < meta.num_classes:
        raise InvalidLabelError(f"label {int(label)} is out of range: {valid_classes(meta)}")
    return int(label)


def class_name(meta: ArtefactMetadata, index: int) -> str:
    """The name of class `index` (its index as text where the export names no classes)."""
    return meta.classes[index] if index < len(meta.classes) else str(index)


def seed_labels(seeds: Sequence[int], num_classes: int) -> np.ndarray | None:
    """int64 label of each seed where a conditional model is sampled over all its classes at once (export parity,
    fp16 calibration, evaluation): seed mod num_classes, so consecutive seeds cover every class nearly equally;
    None for an unconditional model."""
    return np.asarray(seeds, np.int64) % num_classes if num_classes > 0 else None


def label_record(meta: ArtefactMetadata, index: int) -> dict[str, Any]:
    """{"label": index, "class": name}: how every record the runtime writes names a class (a file's provenance,
    a tar sample's .json, a bulk manifest, a --per-class classes.json)."""
    return {"label": int(index), "class": class_name(meta, index)}


def valid_classes(meta: ArtefactMetadata) -> str:
    names = ", ".join(class_name(meta, i) for i in range(min(meta.num_classes, 20)))
    more = f", ... ({meta.num_classes} in all)" if meta.num_classes > 20 else ""
    return f"one of {names}{more} (or an index 0..{meta.num_classes - 1})"

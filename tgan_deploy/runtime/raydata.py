"""Bulk sampling on a Ray cluster: a `ray.data.Dataset` of rows {seed, image} computed by an actor pool.

    import ray
    from tgan_deploy.runtime.raydata import sample_dataset

    ray.init()                                                        # or ray.init("auto") on a cluster
    ds = sample_dataset("export/", n=1_000_000, seed=0, concurrency=8, num_gpus=1)  # 8 GPU actors
    to_webdataset(ds).write_webdataset("s3://bucket/synthetic/")      # or ds.write_images / ds.write_parquet

Each actor opens one `Sampler` once and turns batches of seeds into uint8 HWC images; the images are the
ones `Sampler.sample` gives for the same seeds (and truncation/psi). Rows come in no particular order
unless `ray.data.DataContext.get_current().execution_options.preserve_order = True`. Needs the `[ray]`
extra; torch-free like the rest of the runtime (a checkpoint MODEL would need torch on every worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy._extras import require
from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.bulk.formats import sample_key
from tgan_deploy.runtime.labels import Label, resolve_labels
from tgan_deploy.runtime.latents import check_latent_options, check_seeds, seed_range
from tgan_deploy.runtime.model_path import locate_model
from tgan_deploy.runtime.sampler import Sampler


class _SamplerActor:
    """One Sampler per actor; a batch {"id": seeds - offset[, "label"]} -> {"seed", "image"[, "label"]}."""

    def __init__(self, model: str, backend: str, device: str, max_batch: int, threads: int | None, offset: int,
                 truncation: float | None, psi: float | None, label: Label | None) -> None:
        self.sampler = Sampler.open(model, backend=backend, device=device, max_batch=max_batch, threads=threads)
        self.offset, self.truncation, self.psi, self.label = offset, truncation, psi, label

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seeds = batch["id"].astype(np.int64) + self.offset
        labels = self.sampler.check_labels(batch["label"].tolist() if "label" in batch else self.label, len(seeds))
        images = self.sampler.sample([int(s) for s in seeds], truncation=self.truncation, psi=self.psi,
                                     labels=labels)
        return {"seed": seeds, "image": images, **({} if labels is None else {"label": labels})}


def sample_dataset(model: str | Path, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None, *,
                   truncation: float | None = None, psi: float | None = None, concurrency: int = 1,
                   num_cpus: float = 1, num_gpus: float = 0, batch_size: int = 64, backend: str = "auto",
                   threads: int | None = None, labels: Label | Sequence[Label] | None = None) -> Any:
    """A lazy `ray.data.Dataset` of {"seed": int64, "image": uint8 [H, W, C]} for seeds seed..seed+n-1 (or `seeds`).

    labels (class-conditional models): one label (index or class name) for every row, or with `seeds` one per
    seed; rows then carry "label" (the int64 class index) too.

    concurrency: actors in the pool; num_cpus / num_gpus: what each actor reserves (num_gpus > 0 runs each
    Sampler on its GPU). The pool must leave the cluster a CPU for Ray's read tasks, else the pipeline stalls
    (seen with 2 one-CPU actors on a 2-CPU cluster): that is refused when a cluster is already connected.
    """
    ray = require("ray", "sample_dataset on a Ray cluster")
    if (n is None) == (seeds is None):
        raise TganError("pass n=... (with seed=...) or seeds=[...], not both and not neither")
    per_row = labels is not None and not isinstance(labels, (str, int, np.integer))
    if per_row and seeds is None:
        raise TganError("one label per row needs seeds=[...]; with n=... give one label for every row")
    label: Label | None = None if per_row else labels  # type: ignore[assignment]
    meta = locate_model(model).metadata  # None for a checkpoint or a lone .onnx file: the actors check labels
    if meta is not None and not per_row:
        resolve_labels(meta, label, 1)  # refused here in one line, not later in an actor's traceback
    if seeds is not None:
        listed = check_seeds(seeds, "tgan" if meta is None else meta.seed_rule)
        row_labels = _row_labels(meta, labels, len(listed)) if per_row else []
        ds = ray.data.from_items([{"id": s, **({"label": row_labels[i]} if per_row else {})}
                                  for i, s in enumerate(listed)])
        offset = 0
    else:
        first = seed_range(seed, n, "tgan" if meta is None else meta.seed_rule).start
        ds, offset = ray.data.range(n), first
    check_latent_options(truncation, psi)
    if concurrency < 1 or batch_size < 1:
        raise TganError("concurrency and batch_size must be >= 1")
    if ray.is_initialized():
        cpus = ray.cluster_resources().get("CPU", 0)
        if concurrency * num_cpus >= cpus:
            raise TganError(f"{concurrency} actors x {num_cpus} CPU take all {cpus:g} CPUs of the cluster: Ray's "
                            "read tasks would get none and the pipeline stalls; use fewer actors or num_cpus")
    device = "cuda" if num_gpus > 0 else "cpu"
    actor_threads = threads if threads is not None else max(1, int(num_cpus))
    return ds.map_batches(_SamplerActor, batch_size=batch_size, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=num_cpus,
                          num_gpus=num_gpus or None,
                          fn_constructor_kwargs={"model": str(model), "backend": backend, "device": device,
                                                 "max_batch": batch_size, "threads": actor_threads,
                                                 "offset": offset, "truncation": truncation, "psi": psi,
                                                 "label": label})


def _row_labels(meta: ArtefactMetadata | None, labels: Any, n: int) -> list[int]:
    """One label per seed as class indices, checked here on the driver (a Ray column holds one type)."""
    if meta is None:  # a checkpoint or a lone .onnx file: indices pass, the actors check them
        if not all(isinstance(label, (int, np.integer)) for label in labels):
            raise TganError("class names per row need an export with model.json: give class indices")
        if len(labels) != n:
            raise TganError(f"got {len(labels)} labels for {n} seeds: give one label per seed, or one")
        return [int(label) for label in labels]
    resolved = resolve_labels(meta, list(labels), n)
    assert resolved is not None
    return resolved.tolist()


def _webdataset_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    seeds = [int(s) for s in batch["seed"]]
    labels = [int(label) for label in batch["label"]] if "label" in batch else [None] * len(seeds)
    sample = {"__key__": np.array([sample_key(s, label) for s, label in zip(seeds, labels, strict=True)]),
              "png": batch["image"],
              "json": np.array([{"seed": s} for s in seeds], dtype=object)}  # Ray's encoder json.dumps each
    if "label" in batch:  # WebDataset's class-index convention: a .cls entry
        sample["cls"] = batch["label"]
    return sample


def to_webdataset(ds: Any) -> Any:
    """Rows {seed, image} -> WebDataset samples {"__key__": "XXXXXX", "png": image, "json": {"seed": s}}, the
    keys of `tgan-sample --format tar` (rows with a label: "LLLL-XXXXXX" and a .cls entry), ready for
    `Dataset.write_webdataset` (which encodes the PNGs)."""
    return ds.map_batches(_webdataset_batch, batch_format="numpy")

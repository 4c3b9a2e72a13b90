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
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.bulk.formats import sample_key
from tgan_deploy.runtime.latents import check_latent_options, check_seeds
from tgan_deploy.runtime.sampler import Sampler


class _SamplerActor:
    """One Sampler per actor; a batch {"id": seeds - offset} -> {"seed", "image"}."""

    def __init__(self, model: str, backend: str, device: str, max_batch: int, threads: int | None, offset: int,
                 truncation: float | None, psi: float | None) -> None:
        self.sampler = Sampler.open(model, backend=backend, device=device, max_batch=max_batch, threads=threads)
        self.offset, self.truncation, self.psi = offset, truncation, psi

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seeds = batch["id"].astype(np.int64) + self.offset
        images = self.sampler.sample([int(s) for s in seeds], truncation=self.truncation, psi=self.psi)
        return {"seed": seeds, "image": images}


def sample_dataset(model: str | Path, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None, *,
                   truncation: float | None = None, psi: float | None = None, concurrency: int = 1,
                   num_cpus: float = 1, num_gpus: float = 0, batch_size: int = 64, backend: str = "auto",
                   threads: int | None = None) -> Any:
    """A lazy `ray.data.Dataset` of {"seed": int64, "image": uint8 [H, W, C]} for seeds seed..seed+n-1 (or `seeds`).

    concurrency: actors in the pool; num_cpus / num_gpus: what each actor reserves (num_gpus > 0 runs each
    Sampler on its GPU). The pool must leave the cluster a CPU for Ray's read tasks, else the pipeline stalls
    (seen with 2 one-CPU actors on a 2-CPU cluster): that is refused when a cluster is already connected.
    """
    ray = require("ray", "sample_dataset on a Ray cluster")
    if (n is None) == (seeds is None):
        raise TganError("pass n=... (with seed=...) or seeds=[...], not both and not neither")
    if seeds is not None:
        ds = ray.data.from_items([{"id": s} for s in check_seeds(seeds)])
        offset = 0
    else:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or seed < 0:
            raise TganError(f"n must be a positive integer and seed >= 0, got n={n!r}, seed={seed!r}")
        ds, offset = ray.data.range(n), seed
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
                                                 "offset": offset, "truncation": truncation, "psi": psi})


def _webdataset_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    seeds = [int(s) for s in batch["seed"]]
    return {"__key__": np.array([sample_key(s) for s in seeds]), "png": batch["image"],
            "json": np.array([{"seed": s} for s in seeds], dtype=object)}  # Ray's encoder json.dumps each


def to_webdataset(ds: Any) -> Any:
    """Rows {seed, image} -> WebDataset samples {"__key__": "XXXXXX", "png": image, "json": {"seed": s}}, the
    keys of `tgan-sample --format tar`, ready for `Dataset.write_webdataset` (which encodes the PNGs)."""
    return ds.map_batches(_webdataset_batch, batch_format="numpy")

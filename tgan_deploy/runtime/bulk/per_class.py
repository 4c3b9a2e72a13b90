"""`tgan-sample EXPORT --per-class N --out DIR`: every class of a class-conditional model, N images each.

Each class is an ordinary bulk job (same seeds, that class's label) in its own directory DIR/CLASS/, so
everything a bulk directory does holds per class: image files at DIR/CLASS/seed-XXXXXX.png, tar shards whose
samples carry `.cls` (the class index) and the label in their `.json`, `labels.npy` beside `seeds.npy`, the
label and class name in every manifest.json, `--resume`, `--shard I/N` (each machine writes its share of every
class) and `--verify DIR`. DIR/classes.json, written last, lists the classes and their directories.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tgan_deploy.io import write_json_atomic
from tgan_deploy.runtime.bulk.errors import BulkOptionError
from tgan_deploy.runtime.bulk.pipeline import BulkOptions, BulkResult, Progress, run_bulk
from tgan_deploy.runtime.bulk.plan import SeedPlan
from tgan_deploy.runtime.sampler import Sampler

CLASSES_FILE = "classes.json"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def class_dir_name(sampler: Sampler, index: int) -> str:
    """The class's name where it is a safe directory name, else class-XXXX (its index)."""
    name = sampler.class_name(index)
    return name if _SAFE_NAME.fullmatch(name) else f"class-{index:04d}"


def run_per_class(sampler: Sampler, model: str | Path, plan: SeedPlan, out: Path, options: BulkOptions,
                  progress: Callable[[int, int], Progress] | None = None) -> list[tuple[str, BulkResult]]:
    """Write `plan` once per class into out/CLASS/; (directory name, result) per class."""
    if not sampler.num_classes:
        raise BulkOptionError("--per-class needs a class-conditional model; this one has no classes: use --n")
    if out.exists() and not out.is_dir():
        raise BulkOptionError(f"--out {out} is a file: give a directory")
    results = []
    for index in range(sampler.num_classes):
        name = class_dir_name(sampler, index)
        labelled = dataclasses.replace(options, label=index)
        results.append((name, run_bulk(sampler, model, plan, out / name, labelled, progress)))
    write_json_atomic(out / CLASSES_FILE, classes_record(sampler, plan, [name for name, _ in results]))
    return results


def classes_record(sampler: Sampler, plan: SeedPlan, dirs: list[str]) -> dict[str, Any]:
    return {"classes": [{**sampler.label_record(i), "dir": d} for i, d in enumerate(dirs)],
            "per_class": len(plan.seeds), "shard": f"{plan.shard[0]}/{plan.shard[1]}"}


def class_dirs(out: Path) -> list[Path] | None:
    """The class directories of a --per-class output (from its classes.json); None if `out` is not one."""
    from tgan_deploy.runtime.bulk.manifest import read_json

    record = read_json(out / CLASSES_FILE)
    if record is None:
        return None
    return [out / entry["dir"] for entry in record["classes"]]

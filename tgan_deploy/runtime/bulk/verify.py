"""`tgan-sample --verify DIR...`: check finished bulk outputs (one directory or the parts of a sharded job)
against their manifests: every part's checksum recomputed from the files, counts, no file the manifest does
not claim, all parts of one job, no part twice, and whether together they are the whole set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy.io import file_sha256
from tgan_deploy.runtime.bulk.errors import VerifyError
from tgan_deploy.runtime.bulk.formats import ByteBudget, make_writer
from tgan_deploy.runtime.bulk.manifest import MANIFEST_FILE, identity_differences, read_json
from tgan_deploy.runtime.bulk.per_class import class_dirs
from tgan_deploy.runtime.bulk.plan import SeedPlan, parse_shard


def plan_of(job: dict[str, Any]) -> SeedPlan:
    described = job["seeds"]
    seeds: Sequence[int] = (tuple(described["list"]) if "list" in described
                            else range(described["first"], described["first"] + described["n"]))
    return SeedPlan(seeds, int(job["part_size"]), parse_shard(job["shard"]))


def verify_dir(out: Path) -> tuple[dict[str, Any], SeedPlan, list[str]]:
    """(its job, its plan, problems found) for one finished directory."""
    manifest = read_json(out / MANIFEST_FILE)
    if manifest is None or not isinstance(manifest.get("job"), dict):
        raise VerifyError(f"{out} has no readable {MANIFEST_FILE}: the run is unfinished or this is not a "
                          "tgan-sample output; finish it with the same command and --resume")
    job, problems = manifest["job"], []
    plan = plan_of(job)
    seeds = plan.my_seeds()
    writer = make_writer(out, job["format"], ByteBudget(), tuple(job["image_shape"]), len(seeds), {},
                         label=job.get("label"))
    if manifest["count"] != len(seeds):
        problems.append(f"count {manifest['count']} != {len(seeds)} seeds of shard {job['shard']}")
    recorded = {int(part["part"]): part for part in manifest["parts"]}
    if sorted(recorded) != list(plan.my_parts()):
        problems.append(f"parts {sorted(recorded)[:5]}... are not shard {job['shard']}'s parts "
                        f"{plan.my_parts().start}..{plan.my_parts().stop - 1}")
    for part in plan.my_parts():
        if part not in recorded:
            continue
        part_seeds = plan.part_seeds(part)
        try:
            sha = writer.part_sha256(recorded[part], part_seeds, plan.first_row(part))
        except (OSError, ValueError) as exc:
            problems.append(f"part {part}: {exc}")
            continue
        if sha != recorded[part]["sha256"] or recorded[part]["count"] != len(part_seeds):
            problems.append(f"part {part} (seeds {part_seeds[0]}..{part_seeds[-1]}): checksum or count differs")
    for name, sha in manifest.get("files", {}).items():
        if not (out / name).is_file() or file_sha256(out / name) != sha:
            problems.append(f"{name}: missing or its checksum differs")
    problems += _unclaimed(out, job, plan, writer)
    return job, plan, problems


def _unclaimed(out: Path, job: dict[str, Any], plan: SeedPlan, writer: Any) -> list[str]:
    owned = {entry.name for entry in out.iterdir() if writer.owns(entry.name)}
    if job["format"] == "npy":
        if "images.npy" in owned:
            shape = np.load(out / "images.npy", mmap_mode="r").shape
            if list(shape) != [len(plan.my_seeds()), *job["image_shape"]]:
                return [f"images.npy has shape {list(shape)}, the manifest says {len(plan.my_seeds())} images"]
        expected_npy = {"images.npy", "seeds.npy", *(["labels.npy"] if job.get("label") is not None else [])}
        return [] if owned == expected_npy else [f"npy files present: {sorted(owned)}"]
    expected = len(plan.my_parts()) if job["format"] == "tar" else len(plan.my_seeds())
    extra = len(owned) - expected
    return [f"{extra} file(s) the manifest does not claim"] if extra > 0 else []


def verify_dirs(dirs: Sequence[Path]) -> list[str]:
    """Report lines; VerifyError (exit 1) naming every problem if anything is wrong or parts are missing.

    A --per-class output (classes.json) is verified class by class: each class directory, with the same class's
    directories of the other shards given, must be a complete set."""
    per_class = [class_dirs(out) for out in dirs]
    if all(found is not None for found in per_class):
        if len({len(found) for found in per_class if found is not None}) > 1:
            raise VerifyError("these --per-class directories list different classes: they are not one job")
        lines = []
        for same_class in zip(*per_class, strict=True):  # type: ignore[misc]  # equal lengths: checked above
            lines += verify_dirs(list(same_class))
        return lines
    if any(found is not None for found in per_class):
        raise VerifyError("give either --per-class output directories (with classes.json) or plain ones, not both")
    lines, problems = [], []
    jobs: list[tuple[Path, dict[str, Any], SeedPlan]] = []
    for out in dirs:
        job, plan, found = verify_dir(out)
        jobs.append((out, job, plan))
        problems += [f"{out}: {p}" for p in found]
        lines.append(f"{out}: shard {job['shard']}, {len(plan.my_seeds())} images in {len(plan.my_parts())} "
                     f"parts, {job['format']}: {'ok' if not found else 'PROBLEMS'}")
    first_out, first_job, first_plan = jobs[0]
    seen: dict[int, Path] = {}
    for out, job, plan in jobs:
        differ = identity_differences(first_job, job, ignore=("shard",))
        if differ:
            problems.append(f"{out} is another job than {first_out} (differs in: {', '.join(differ)})")
        for part in plan.my_parts():
            if part in seen:
                problems.append(f"part {part} is in both {seen[part]} and {out}")
            seen[part] = out
    missing = sorted(set(range(first_plan.part_count)) - set(seen))
    if missing:
        problems.append(f"{len(missing)} of {first_plan.part_count} parts are in none of the directories given "
                        f"(first missing: part {missing[0]}); pass every shard's directory")
    if problems:
        raise VerifyError("; ".join(problems))
    lines.append(f"union: {len(first_plan.seeds)} images in {first_plan.part_count} parts: complete, no overlap")
    return lines

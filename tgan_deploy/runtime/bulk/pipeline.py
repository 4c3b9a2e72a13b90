"""The bulk job: prepare --out, then inference in this thread and encoding in a small pool, part by part.

Memory stays flat at any N: seeds are a range, at most `max_pending` encoded batches are in flight, and
per-part records are all that accumulates (a few hundred bytes per `part_size` images).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tgan_deploy import __version__
from tgan_deploy.io import file_sha256, temporary_target, write_json_atomic
from tgan_deploy.runtime.bulk.errors import BulkOptionError, BulkWriteError, OutputInUseError
from tgan_deploy.runtime.bulk.formats import (
    FORMATS,
    LABELLED_KEY,
    ByteBudget,
    PartWriter,
    PngText,
    encoder_options,
    make_writer,
)
from tgan_deploy.runtime.bulk.manifest import (
    JOB_FILE,
    JOURNAL_FILE,
    MANIFEST_FILE,
    Journal,
    identity_differences,
    read_json,
    remove_progress_files,
    write_manifest,
)
from tgan_deploy.runtime.bulk.plan import SeedPlan, batches
from tgan_deploy.runtime.provenance import w_info
from tgan_deploy.runtime.sampler import Sampler

Progress = Callable[[int], None]  # called with the number of images just written


@dataclasses.dataclass
class BulkOptions:
    image_format: str = "png"
    truncation: float | None = None
    psi: float | None = None
    resume: bool = False
    force: bool = False
    workers: int = 0  # encoder threads; 0: min(4, cores)
    byte_limit: int | None = None  # ByteBudget: the full-disk seam (None: the file system decides)
    png_text: PngText | None = None  # seed -> tEXt chunks of its PNG (files and tar shards), e.g. provenance
    label: int | None = None  # class-conditional models: the class index of every image (see per_class.py)
    psi_cutoff: int | None = None  # style models (runtime/wspace.py): truncation in w on layers [0, psi_cutoff)
    mix_seed: int | None = None  # style models: layers [mix_cutoff, num_ws) of every image from this seed
    mix_cutoff: int | None = None

    def w_controls(self) -> dict[str, Any]:
        """The w-space controls given (none: {}, so a plain job's identity and files stay as they were)."""
        return w_info(psi_cutoff=self.psi_cutoff, mix_seed=self.mix_seed, mix_cutoff=self.mix_cutoff)


@dataclasses.dataclass
class BulkResult:
    out: Path
    count: int  # images in this directory (this shard's share)
    written: int  # images written by this run (the rest were there from an interrupted run)
    already_complete: bool = False


def check_format(image_format: str) -> None:
    if image_format not in FORMATS:
        raise BulkOptionError(f"--format {image_format!r} is not one of {', '.join(FORMATS)}")


def model_sha256(model: str | Path, backend: str) -> str:
    """sha256 of the file the backend really serves (the ONNX file, the engine, or the checkpoint; a style export:
    of its mapping and synthesis files' digests)."""
    from tgan_deploy.runtime.model_path import locate_model

    location = locate_model(model)
    if location.metadata is not None and location.metadata.w_space:  # a style export: its two graphs are served
        pair = location.style_engines if backend == "tensorrt" else location.style_onnx
        assert pair is not None  # Sampler.open found them
        return hashlib.sha256("".join(file_sha256(f) for f in pair).encode()).hexdigest()
    served = {"onnxruntime": location.onnx, "tensorrt": location.engine}.get(backend, location.checkpoint)
    if backend == "torch" and served is not None and served.is_dir():
        from tgan_deploy.run_layout import resolve_checkpoint

        served = resolve_checkpoint(served)
    assert served is not None  # Sampler.open found it
    return file_sha256(served)


def job_identity(sampler: Sampler, model: str | Path, plan: SeedPlan, options: BulkOptions) -> dict[str, Any]:
    """Everything the bytes of the output depend on; two runs with equal identities write equal bytes."""
    meta = sampler.metadata
    return {"model_sha256": model_sha256(model, sampler.backend), "backend": sampler.backend,
            "image_shape": [meta["resolution"], meta["resolution"], meta["channels"]],
            "format": options.image_format, "encoder": encoder_options(options.image_format),
            "truncation": options.truncation, "psi": options.psi, "seeds": plan.describe(),
            "part_size": plan.part_size, "shard": f"{plan.shard[0]}/{plan.shard[1]}",
            # the chunks as the first seed's PNG gets them: what every PNG's text is made from
            "png_text": dict(options.png_text(plan.seeds[0])) if options.png_text else None,
            **label_fields(sampler, options), **options.w_controls(),
            # tar keys of a labelled job lead with the class (a shard written by the seed-only rule must not resume)
            **({"sample_key": LABELLED_KEY} if options.image_format == "tar" and options.label is not None else {})}


def label_fields(sampler: Sampler, options: BulkOptions) -> dict[str, Any]:
    """{"label": index, "class": name} of a conditional job (in its identity and every tar sample's .json)."""
    return {} if options.label is None else sampler.label_record(options.label)


def run_bulk(sampler: Sampler, model: str | Path, plan: SeedPlan, out: Path, options: BulkOptions,
             progress: Callable[[int, int], Progress] | None = None) -> BulkResult:
    """Write this shard's parts of `plan` to `out`; progress(total, done) returns the per-batch callback."""
    check_format(options.image_format)
    identity = job_identity(sampler, model, plan, options)
    seeds = plan.my_seeds()
    if _prepare_output(out, identity, options):
        return BulkResult(out, len(seeds), 0, already_complete=True)
    writer = make_writer(out, options.image_format, ByteBudget(options.byte_limit), tuple(identity["image_shape"]),
                         len(seeds),
                         {"truncation": options.truncation, "psi": options.psi, **label_fields(sampler, options),
                          **options.w_controls()},
                         options.png_text, options.label)
    journal = Journal(out)
    try:
        writer.remove_temporaries()
        done = journal.read()
        todo = [part for part in plan.my_parts() if part not in done]
        already = len(seeds) - sum(len(plan.part_seeds(part)) for part in todo)
        advance = progress(len(seeds), already) if progress else (lambda _: None)
        _write_parts(sampler, plan, todo, writer, journal, options, advance)
        records = journal.read()
        files = writer.finish(seeds)
        parts = [{"part": part, "count": len(plan.part_seeds(part)), **_without(records[part], "part")}
                 for part in plan.my_parts()]
        write_manifest(out, identity, parts, files, len(seeds),
                       {"tool": f"tgan-deploy {__version__}", "providers": sampler.providers})
        remove_progress_files(out)
    except OSError as exc:
        writer.abort_part()
        where = exc.filename or out
        raise BulkWriteError(f"writing {where} failed: {exc.strerror or exc}; the unfinished part was removed: "
                             f"fix it (free space?) and run the same command with --resume") from None
    except BaseException:
        writer.abort_part()
        raise
    return BulkResult(out, len(seeds), len(seeds) - already)


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


def _write_parts(sampler: Sampler, plan: SeedPlan, todo: list[int], writer: PartWriter, journal: Journal,
                 options: BulkOptions, advance: Progress) -> None:
    workers = options.workers or min(4, os.cpu_count() or 1)
    max_pending = 2 * workers  # bounds memory: at most this many batches between inference and disk
    pending: collections.deque[tuple[Future[Any], int]] = collections.deque()

    def drain(keep: int) -> None:
        while len(pending) > keep:
            future, size = pending.popleft()
            writer.add(future.result())
            advance(size)

    with ThreadPoolExecutor(workers, thread_name_prefix="tgan-encode") as pool:
        try:
            for part in todo:
                part_seeds = plan.part_seeds(part)
                writer.open_part(part, part_seeds, plan.first_row(part))
                for batch in batches(part_seeds, sampler.max_batch):
                    images = sampler.sample(batch, truncation=options.truncation, psi=options.psi,
                                            labels=options.label, psi_cutoff=options.psi_cutoff,
                                            mix_seeds=options.mix_seed, mix_cutoff=options.mix_cutoff)
                    pending.append((pool.submit(writer.encode, images, batch), len(batch)))
                    drain(max_pending)
                drain(0)
                journal.append({"part": part, **writer.close_part()})
        finally:
            for future, _ in pending:  # on an error: let no encoder write after the part is removed
                future.cancel()
            for future, _ in pending:
                with contextlib.suppress(BaseException):
                    future.result()


def _prepare_output(out: Path, identity: dict[str, Any], options: BulkOptions) -> bool:
    """Check --out against the job and write the job file; True when it already holds this complete job."""
    if out.exists() and not out.is_dir():
        raise BulkOptionError(f"--out {out} is a file: give a directory (or FILE.npz / FILE.png)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BulkOptionError(f"--out {out} cannot be created ({exc.strerror}): choose a writable directory") \
            from None
    manifest = read_json(out / MANIFEST_FILE)
    job = manifest["job"] if manifest and isinstance(manifest.get("job"), dict) else read_json(out / JOB_FILE)
    if job is not None and job != identity and not options.force:
        differ = ", ".join(identity_differences(job, identity))
        raise OutputInUseError(f"--out {out} holds output of another job (differs in: {differ}): use another "
                               "--out, or --force to replace it")
    if job == identity and not options.force:
        if manifest is not None:
            remove_progress_files(out)  # a kill between the manifest and this cleanup
            return True
        if not options.resume:
            raise OutputInUseError(f"--out {out} holds an unfinished run of this job: add --resume to finish it, "
                                   "or --force to start over")
    elif job is None and not options.force and any(out.iterdir()):
        raise OutputInUseError(f"--out {out} is not empty and holds no tgan-sample job: use an empty or new "
                               "directory, or --force to write into it")
    if options.force:
        _remove_job_output(out)
    try:
        if job != identity or options.force:
            write_json_atomic(out / JOB_FILE, identity)
    except OSError as exc:
        raise BulkOptionError(f"--out {out} is not writable ({exc.strerror}): choose a writable directory") \
            from None
    return False


def _remove_job_output(out: Path) -> None:
    """--force: remove what any bulk job writes (every format's files), leave anything else alone."""
    owners = [make_writer(out, fmt, ByteBudget(), (1, 1, 1), 0, {}) for fmt in FORMATS]
    for entry in out.iterdir():
        name = temporary_target(entry.name) or entry.name  # a temporary goes with the file it was for
        if name in (MANIFEST_FILE, JOB_FILE, JOURNAL_FILE) or any(w.owns(name) for w in owners):
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


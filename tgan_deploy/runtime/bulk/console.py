"""The bulk job as `tgan-sample --out DIR` runs it: a progress bar with images/s and ETA, a summary line."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from tgan_deploy.runtime.bulk.per_class import CLASSES_FILE, run_per_class
from tgan_deploy.runtime.bulk.pipeline import BulkOptions, Progress, run_bulk
from tgan_deploy.runtime.bulk.plan import SeedPlan
from tgan_deploy.runtime.sampler import Sampler


def write_with_progress(sampler: Sampler, model: str, plan: SeedPlan, out: Path, options: BulkOptions,
                        per_class: bool = False) -> str:
    """Run the job (per_class: once per class, per_class.py) under a progress bar (on a terminal; elsewhere, e.g.
    a batch job's log, nothing is drawn, so an error stays the one line on stderr); returns the line to print."""
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()

        def progress(total: int, already: int) -> Progress:
            label = f"writing {options.image_format}" + (f" ({already} already there)" if already else "")
            bar = stack.enter_context(click.progressbar(length=max(total - already, 1), label=label,
                                                        file=sys.stderr, show_pos=True, hidden=not sys.stderr.isatty(),
                                                        item_show_func=lambda text: text))
            written = [0]

            def advance(images: int) -> None:
                written[0] += images
                elapsed = time.perf_counter() - started
                bar.update(images, f"{written[0] / elapsed:,.0f} images/s" if elapsed > 0 else None)

            return advance

        if per_class:
            results = run_per_class(sampler, model, plan, out, options, progress)
        else:
            result = run_bulk(sampler, model, plan, out, options, progress)
    shard = "" if plan.shard == (0, 1) else f" (shard {plan.shard[0]}/{plan.shard[1]})"
    if per_class:
        written, count = sum(r.written for _, r in results), sum(r.count for _, r in results)
        return (f"wrote {written} images of {len(results)} classes to {out}/CLASS/{shard} as {options.image_format}, "
                f"{count} in all, {CLASSES_FILE} ({sampler.backend}: {', '.join(sampler.providers)})")
    if result.already_complete:
        return f"{out} already holds this complete set ({result.count} images, manifest.json): nothing to do"
    return (f"wrote {result.written} images to {out}{shard} as {options.image_format}, {result.count} in all, "
            f"manifest.json ({sampler.backend}: {', '.join(sampler.providers)})")

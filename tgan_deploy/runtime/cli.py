"""`tgan-sample` and `tgan-bench`: thin commands over Sampler, BatchingSampler and the image writers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from tgan_deploy.cli import TganCommand, int_list
from tgan_deploy.errors import TganError
from tgan_deploy.runtime.backends import BACKENDS
from tgan_deploy.runtime.latents import check_latent_options, check_seeds
from tgan_deploy.runtime.provenance import info_text, label_info, png_text, provenance, w_info
from tgan_deploy.runtime.sampler import Sampler
from tgan_deploy.runtime.walk_cli import sample_walk, walk_options
from tgan_deploy.runtime.wspace import refuse_w_controls

MODEL_HELP = "an export (directory with model.json, .onnx, .plan) or a checkpoint (.pt file or run directory)"


def _open(model: str, backend: str, device: str, max_batch: int, threads: int | None) -> Sampler:

    return Sampler.open(model, backend=backend, device=device, max_batch=max_batch, threads=threads)


backend_option = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                              help="auto: TensorRT engine on a GPU, else ONNX Runtime (CUDA if a GPU is "
                                   "present, else CPU); checkpoints use torch.")
device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
max_batch_option = click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
                                help="Largest batch run at once; bigger requests are split.")
truncation_option = click.option("--truncation", type=float, default=None,
                                 help="BigGAN's truncation trick: latent values redrawn until inside "
                                      "[-T, T]; smaller T trades variety for fidelity (e.g. 0.7; at "
                                      "least 0.01) "
                                      "[default: off].")
psi_option = click.option("--psi", type=float, default=None,
                          help="Scale latents by PSI (StyleGAN's truncation psi in Z space), after --truncation; "
                               "style models: StyleGAN's truncation in w, w_avg + PSI * (w - w_avg) "
                               "[default: off; style models: the export's default_psi].")
psi_cutoff_option = click.option("--psi-cutoff", type=click.IntRange(min=1), default=None, metavar="L",
                                 help="Style models: truncate only ws layers 0 .. L-1 (NVlabs' truncation_cutoff) "
                                      "[default: every layer].")
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="CPU threads per batch [default: all cores available].")


@click.command("sample", cls=TganCommand, help=f"""Sample MODEL ({MODEL_HELP}) for seeds and write a directory
(streaming, resumable, shardable: image files, WebDataset shards or an npy array, with manifest.json), a grid
or an .npz; or, with --walk, render a latent walk through seeds as a GIF, an MP4 or a PNG strip.
`tgan-sample --verify DIR...` checks finished directories (docs/bulk.md).

Seed s always gives the same image: its latent is numpy.random.default_rng(s).standard_normal(latent_dim)
(imported NVlabs StyleGAN models: numpy.random.RandomState(s).randn(1, latent_dim), NVlabs' own seeds),
and --n N --seed S means seeds S, S+1, ..., S+N-1. Style models also take w-space controls: --psi
(truncation in w), --psi-cutoff, --mix-seeds/--mix-cutoff, --mix-grid (docs/runtime.md, "w-space").""")
@click.argument("model", nargs=-1, metavar="MODEL | --verify DIR...")
@click.option("--n", "n", type=int, default=16, show_default=True, help="How many images (seeds SEED .. SEED+N-1).")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--seeds", default=None, help="Explicit comma-separated seeds (overrides --n/--seed), e.g. 3,17,42.")
@click.option("--out", type=click.Path(path_type=Path),
              help="A directory (streamed in --format, with manifest.json, any N; toy models: points.npz), "
                   "FILE.npz (images or points + seeds), or FILE.png (one grid; toy models: a scatter plot).")
@click.option("--columns", type=click.IntRange(min=1), default=None, help="Grid columns [default: square-ish].")
@click.option("--label", default=None,
              help="Class-conditional models: the class of every image, by name or index (e.g. 7 or seven). "
                   "Without it, --out FILE.png shows every class (one row each) for the same seeds.")
@click.option("--format", "image_format", default="png", show_default=True,
              help="Directory --out: png|jpeg|webp (seed-XXXXXX.* files), npy (images.npy + seeds.npy) or tar "
                   "(WebDataset shards). See docs/bulk.md.")
@click.option("--per-class", type=click.IntRange(min=1), default=None, metavar="N",
              help="Class-conditional models, directory --out: N images of every class (seeds SEED .. SEED+N-1, "
                   "or --seeds), each class in DIR/CLASS/ (docs/bulk.md).")
@click.option("--shard-size", type=int, default=1000, show_default=True,
              help="Images per part: one tar shard, and the unit of --resume and checksums for every format.")
@click.option("--shard", "shard", default=None, metavar="I/N",
              help="Write only machine I's share (0-based) of N; the N directories together are the whole set.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run into the same --out (same command).")
@click.option("--force", is_flag=True, help="Replace what --out holds of another job's output.")
@click.option("--verify", is_flag=True, help="Check finished output directories (DIR...) against their manifests.")
@truncation_option
@psi_option
@psi_cutoff_option
@click.option("--mix-seeds", default=None, metavar="SEEDS",
              help="Style models: style mixing: layers from --mix-cutoff on come from these seeds (one for every "
                   "image, or comma-separated, one per seed; a directory --out takes one).")
@click.option("--mix-cutoff", type=click.IntRange(min=1), default=None, metavar="L",
              help="Style models, with --mix-seeds: ws layers 0 .. L-1 (the coarse styles) from each seed, the "
                   "rest from its mix seed.")
@click.option("--mix-grid", is_flag=True,
              help="Style models, --out FILE.png: NVlabs' style-mixing grid: --seeds are the columns (coarse "
                   "styles), --mix-seeds the rows (the rest), each seed's own image on the top row / left column.")
@walk_options
@backend_option
@device_option
@max_batch_option
@threads_option
def sample_main(model: tuple[str, ...], n: int, seed: int, seeds: str | None, out: Path | None, columns: int | None,
                label: str | None, image_format: str, per_class: int | None, shard_size: int, shard: str | None,
                resume: bool, force: bool, verify: bool, truncation: float | None, psi: float | None,
                psi_cutoff: int | None, mix_seeds: str | None, mix_cutoff: int | None, mix_grid: bool, backend: str,
                device: str, max_batch: int, threads: int | None, **walk: Any) -> None:
    from tgan_deploy.runtime import bulk
    from tgan_deploy.runtime import images as img

    if verify:
        for line in bulk.verify_dirs([Path(d) for d in model] or [Path(".")]):
            click.echo(line)
        return
    if len(model) != 1 or out is None:
        raise TganError("give one MODEL and --out (or --verify DIR...): see tgan-sample --help")
    mix = check_seeds(int_list(mix_seeds, "--mix-seeds")) if mix_seeds is not None else None
    if (mix is None) != (mix_cutoff is None):
        raise TganError("style mixing takes --mix-seeds and --mix-cutoff together: give both, or neither")
    if mix_grid:
        if mix is None or seeds is None or out.suffix.lower() != ".png":
            raise TganError("--mix-grid draws --seeds (columns) against --mix-seeds (rows) with --mix-cutoff into "
                            "--out FILE.png: give all four")
        return _mixing_grid(lambda: _open(model[0], backend, device, max_batch, threads), out,
                            int_list(seeds, "--seeds"), mix, mix_cutoff, psi, psi_cutoff, label)
    if any(value is not None for value in walk.values()):  # --walk and its options: tgan_deploy/runtime/walk_cli.py
        if mix is not None:
            raise TganError("--mix-seeds mixes the styles of sampled images, not of a walk: drop it with --walk")
        return sample_walk(lambda: _open(model[0], backend, device, max_batch, threads), out, columns, truncation,
                           psi, seeds, label, psi_cutoff=psi_cutoff, **walk)
    if out.suffix and out.suffix.lower() not in (".npz", ".png"):
        raise TganError(f"--out {out}: use a directory, a .npz file or a .png file")
    explicit = int_list(seeds, "--seeds") if seeds is not None else None
    if out.suffix and (image_format != "png" or shard or resume or force or per_class):
        raise TganError("--format, --per-class, --shard, --resume and --force apply to a directory --out, not "
                        "FILE.npz/.png")
    if per_class is not None and label is not None:
        raise TganError("--per-class writes every class: drop --label (or drop --per-class and use --n)")
    if mix is not None and len(mix) > 1 and not out.suffix:
        raise TganError("a directory --out takes one --mix-seeds seed (mixed into every image): give one seed, or "
                        "write FILE.npz / FILE.png for one mix seed per seed")
    plan: bulk.SeedPlan | None = None  # a directory --out: the streaming bulk writer's seeds
    if out.suffix:
        seed_list = Sampler.seed_list(explicit) if explicit is not None else Sampler.seed_list(n=n, seed=seed)
    else:  # bad bulk options fail before the model loads
        bulk.check_format(image_format)
        plan = bulk.SeedPlan.from_options(per_class or n, seed, explicit, shard_size, bulk.parse_shard(shard))
    check_latent_options(truncation, psi)  # before the model loads: bad input fails at once
    with _open(model[0], backend, device, max_batch, threads) as sampler:
        if sampler.w_space:
            sampler.w_controls(psi, psi_cutoff, mix is not None, mix_cutoff)
        else:
            refuse_w_controls(psi_cutoff, mix is not None, mix_cutoff)
        if plan is not None:
            plan.check_rule(sampler.seed_rule)  # e.g. NVlabs' seeds end below 2**32
        w_controls = w_info(psi_cutoff=psi_cutoff, mix_seeds=mix, mix_cutoff=mix_cutoff)
        info = provenance(sampler, truncation=truncation, psi=psi, **w_controls)  # recorded in every file written
        if plan is not None and sampler.kind == "image":
            from tgan_deploy.runtime.bulk.console import write_with_progress

            if sampler.num_classes and per_class is None and label is None:
                raise TganError("this model is class-conditional: add --per-class N (N images of every class) or "
                                f"--label CLASS (one class; classes: {', '.join(sampler.classes[:20])})")
            if per_class is not None and not sampler.num_classes:
                raise TganError("--per-class needs a class-conditional model; this one has no classes: use --n")
            if per_class is None:
                sampler.check_labels(label, 1)  # an unconditional model takes no --label; a bad one fails here
            index = None if label is None else sampler.label_index(label)
            options = bulk.BulkOptions(image_format, truncation, psi, resume=resume, force=force,
                                       label=index,
                                       png_text=lambda s: png_text({**info, "seed": int(s)}),
                                       psi_cutoff=psi_cutoff, mix_seed=None if mix is None else mix[0],
                                       mix_cutoff=mix_cutoff)
            click.echo(write_with_progress(sampler, model[0], plan, out, options, per_class=per_class is not None))
            return
        if plan is not None:  # a toy model: its points go to DIR/points.npz (the plan is never listed for images)
            seed_list = list(plan.seeds)
        mix_list = None if mix is None else mix * len(seed_list) if len(mix) == 1 else mix
        labels: np.ndarray | None
        if sampler.num_classes and label is None and out.suffix.lower() == ".png":  # rows: classes; columns: seeds
            columns = columns or len(seed_list)
            labels = np.repeat(np.arange(sampler.num_classes), len(seed_list))
            seed_list = seed_list * sampler.num_classes
            mix_list = None if mix_list is None else mix_list * sampler.num_classes
        else:
            labels = sampler.check_labels(label, len(seed_list))
            info.update(label_info(sampler, label))
        step = sampler.max_batch
        starts = range(0, len(seed_list), step)
        with click.progressbar(starts, label="sampling", file=sys.stderr) as bar:  # drawn on a terminal only
            result = np.concatenate([sampler.sample(seed_list[i:i + step], truncation=truncation, psi=psi,
                                                    labels=None if labels is None else labels[i:i + step],
                                                    psi_cutoff=psi_cutoff, mix_cutoff=mix_cutoff,
                                                    mix_seeds=None if mix_list is None else mix_list[i:i + step])
                                     for i in bar])
        points = sampler.kind == "points"
        what = "points" if points else "images"
        suffix = out.suffix.lower()
        npz_info = np.asarray(info_text({**info, "seeds": seed_list}))
        arrays = {"seeds": np.asarray(seed_list), "provenance": npz_info,
                  **({} if labels is None else {"labels": labels})}
        if suffix == ".npz":
            img.save_npz(out, **{what: result}, **arrays)
        elif suffix == ".png":
            img.save_png(out, img.scatter_image(result) if points else img.make_grid(result, columns),
                         {**info, "seeds": seed_list, **({} if labels is None else {"labels": labels.tolist()})})
        else:
            out = out / "points.npz"
            img.save_npz(out, points=result, **arrays)
        click.echo(f"wrote {len(seed_list)} {what} to {out} ({sampler.backend}: {', '.join(sampler.providers)})")


def _mixing_grid(open_sampler: Callable[[], Sampler], out: Path, columns: list[int], rows: list[int],
                 cutoff: int | None, psi: float | None, psi_cutoff: int | None, label: str | None) -> None:
    from tgan_deploy.runtime import images as img
    from tgan_deploy.runtime.mixing_grid import style_mixing_grid

    check_seeds(columns)
    with open_sampler() as sampler:
        if not sampler.w_space:
            refuse_w_controls(psi_cutoff, True, cutoff)
        assert cutoff is not None  # --mix-seeds came with --mix-cutoff
        grid = style_mixing_grid(sampler, columns, rows, cutoff, psi=psi, psi_cutoff=psi_cutoff, label=label)
        info = provenance(sampler, psi=psi, mix_grid={"columns": columns, "rows": rows},
                          **w_info(psi_cutoff=psi_cutoff, mix_cutoff=cutoff), **label_info(sampler, label))
        img.save_png(out, img.make_grid(grid, len(columns) + 1), info)
        click.echo(f"wrote a {len(rows)}x{len(columns)} style-mixing grid to {out} "
                   f"({sampler.backend}: {', '.join(sampler.providers)})")


@click.command("bench", cls=TganCommand, help=f"Measure p50/p99 latency and images/s of MODEL ({MODEL_HELP}).")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--batch-sizes", default="1,8,64", show_default=True, help="Images per request, comma-separated.")
@click.option("--concurrency", default="1", show_default=True,
              help="Concurrent clients, comma-separated; >1 goes through the micro-batcher unless --no-batcher.")
@click.option("--iters", type=click.IntRange(min=1), default=30, show_default=True, help="Requests per client.")
@click.option("--batcher/--no-batcher", default=True, show_default=True,
              help="Serve concurrent clients through a BatchingSampler (else they share the Sampler's lock).")
@click.option("--max-delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Micro-batcher wait for more requests after the first (0: continuous batching).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the report here.")
@backend_option
@device_option
@max_batch_option
@threads_option
def bench_main(model: str, batch_sizes: str, concurrency: str, iters: int, batcher: bool, max_delay_ms: float,
               json_out: Path | None, backend: str, device: str, max_batch: int, threads: int | None) -> None:
    import platform
    import time

    from tgan_deploy.io import write_json_atomic
    from tgan_deploy.runtime.bench import bench_sampler, format_table

    sizes, clients = int_list(batch_sizes, "--batch-sizes"), int_list(concurrency, "--concurrency")
    if min(sizes) < 1 or min(clients) < 1:
        raise TganError("--batch-sizes and --concurrency must be >= 1")
    rows = []
    with _open(model, backend, device, max_batch, threads) as sampler:
        with click.progressbar(length=len(sizes) * len(clients), label="benchmarking",
                               file=sys.stderr) as bar:
            for c in clients:
                for b in sizes:
                    rows.append(bench_sampler(sampler, b, c, iters, batcher, max_delay_ms))
                    bar.update(1)
        report = {"model": model, "backend": sampler.backend, "providers": sampler.providers,
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.platform(),
                  "processor": platform.processor(), "rows": rows}
    click.echo(format_table(rows))
    if json_out is not None:
        write_json_atomic(json_out, report)
        click.echo(f"wrote {json_out}")

"""Image-folder loading: first decode (into the cache), cache hit, batch fetch, vs decoding per batch.

Writes benchmarks/results/data_loading.{json,md}. Synthetic 512x384 JPEG "photos" (smooth colour fields
plus noise, quality 90), target 64x64 RGB. Measures; passes or fails nothing.

    python benchmarks/data_loading.py [--images 1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from tgan_deploy.config import DataConfig, ModelConfig
from tgan_deploy.data import load_dataset, make_loader
from tgan_deploy.data.images import fit_square, prepare, to_mode

RESULTS = Path(__file__).resolve().parent / "results"


def write_photos(root: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:384, 0:512] / 512.0
    paths = []
    for i in range(n):
        a, b, c = rng.uniform(0, 6, 3)
        img = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy))], axis=2)
        img = (img * 100 + 128 + rng.normal(0, 12, img.shape)).clip(0, 255).astype(np.uint8)
        path = root / f"{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def decode_without_draft(path: Path, resolution: int) -> np.ndarray:
    with Image.open(path) as img:
        out = fit_square(to_mode(ImageOps.exif_transpose(img), 3), resolution)
        return np.asarray(out).transpose(2, 0, 1)


def decode_with_draft(path: Path, resolution: int) -> np.ndarray:
    with Image.open(path) as img:
        return prepare(img, resolution, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="synthetic JPEGs to write (default 1000)")
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    r, batch = args.resolution, 64
    model = ModelConfig(resolution=r, channels=3)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "photos", Path(tmp) / "cache"
        root.mkdir()
        paths = write_photos(root, args.images)
        cfg = DataConfig(cache_dir=str(cache))

        t0 = time.perf_counter()
        ds = load_dataset(str(root), model, cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_dataset(str(root), model, cfg)
        hit = time.perf_counter() - t0

        stream = iter(make_loader(ds, batch, seed=0))
        fetch = []
        for _ in range(200):
            t0 = time.perf_counter()
            next(stream)
            fetch.append(time.perf_counter() - t0)

        # What a lazy dataset would pay per batch in one process: decode + resize 64 files. Interleaved
        # with and without JPEG draft mode (reduced-scale DCT decoding).
        with_draft, without_draft, diffs = [], [], []
        for k in range(6):
            chunk = paths[k * batch:(k + 1) * batch]
            t0 = time.perf_counter()
            a = [decode_with_draft(p, r) for p in chunk]
            with_draft.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = [decode_without_draft(p, r) for p in chunk]
            without_draft.append(time.perf_counter() - t0)
            diffs += [float(np.abs(x.astype(int) - y.astype(int)).mean()) for x, y in zip(a, b, strict=True)]

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
                   f"torch {torch.__version__}, Pillow {Image.__version__}",
        "images": args.images, "source_size": "512x384 JPEG q90", "target": f"{r}x{r} RGB", "batch": batch,
        "first_load_s": first, "first_load_images_per_s": args.images / first, "cache_hit_load_s": hit,
        "batch_fetch_from_cache_median_ms": 1e3 * statistics.median(fetch),
        "decode_batch_with_draft_median_ms": 1e3 * statistics.median(with_draft),
        "decode_batch_without_draft_median_ms": 1e3 * statistics.median(without_draft),
        "draft_vs_full_decode_mean_abs_diff_0_255": statistics.mean(diffs),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_loading.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("first load: decode + resize + write cache", f"{first:.2f} s ({result['first_load_images_per_s']:.0f} img/s)"),
        ("second load (cache hit, memory-mapped)", f"{1e3 * hit:.1f} ms"),
        (f"one batch of {batch} from the cache (median of 200)",
         f"{result['batch_fetch_from_cache_median_ms']:.2f} ms"),
        (f"decoding {batch} files per batch, JPEG draft on (median of 6)",
         f"{result['decode_batch_with_draft_median_ms']:.1f} ms"),
        (f"decoding {batch} files per batch, full decode (median of 6)",
         f"{result['decode_batch_without_draft_median_ms']:.1f} ms"),
        ("draft vs full decode: mean abs pixel difference (0..255)",
         f"{result['draft_vs_full_decode_mean_abs_diff_0_255']:.2f}"),
    ]
    md = [f"# Image-folder loading ({result['date']})", "", f"Machine: {result['machine']}. {args.images} synthetic "
          f"{result['source_size']} files -> {result['target']}. Produced by benchmarks/data_loading.py.", "",
          "| measurement | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], ""]
    (RESULTS / "data_loading.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()

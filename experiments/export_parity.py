"""Export parity and TensorRT-RTX builds at the reference widths (base_channels 64), every resolution.

For each generator (random weights with non-trivial BN statistics: parity does not depend on training)
this runs the real exporter (fp32 + fp16 ONNX, parity against eager PyTorch on ONNX Runtime CPU) and
builds TensorRT-RTX engines (fp32 and fp16) on this CPU, recording times, sizes, errors and which nodes
the fp16 measurement kept in fp32. Writes experiments/results/export_parity.{json,md}.

    python experiments/export_parity.py [--resolutions 32,64,128,256] [--batches 1,7,64] [--base 64]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _factories import small_config, write_checkpoint

from tgan_deploy.export import tensorrt as trt_mod
from tgan_deploy.export.pipeline import ExportOptions, run_export
from tgan_deploy.models import build_generator

RESULTS = Path(__file__).resolve().parent / "results"


def one(arch: str, resolution: int, base: int, batches: tuple[int, ...], work: Path) -> dict[str, object]:
    latent = 2 if arch == "mlp" else 100
    cfg = small_config(arch, resolution, base_channels=base, latent_dim=latent, toy_hidden=400)
    ckpt = write_checkpoint(work / f"{arch}-{resolution}.pt", cfg)
    out = work / f"export-{arch}-{resolution}"
    start = time.perf_counter()
    meta, report = run_export(ExportOptions(source=ckpt, out=out, fp16=True, parity_batches=batches),
                              lambda line: print(line, file=sys.stderr))
    export_s = time.perf_counter() - start
    fp16 = json.loads((out / "fp16.json").read_text())
    row: dict[str, object] = {
        "arch": arch, "resolution": None if arch == "mlp" else resolution, "base_channels": base,
        "params": sum(p.numel() for p in build_generator(cfg.model).parameters()),
        "export_and_parity_s": round(export_s, 1),
        "onnx_mb": round((out / "generator.onnx").stat().st_size / 2**20, 2),
        "onnx_fp16_mb": round((out / "generator.fp16.onnx").stat().st_size / 2**20, 2),
        "fp32_max_abs": max(r.max_abs or 0.0 for r in report.rows if r.precision == "fp32"),
        "fp16_min_psnr_db": round(min(r.psnr_db or 0.0 for r in report.rows if r.precision == "fp16"), 1),
        "fp16_nonfinite": sum(r.nonfinite or 0 for r in report.rows if r.precision == "fp16"),
        "fp16_kept_fp32": fp16["blocked"], "parity_passed": report.passed, "parity_batches": report.batches,
    }
    for precision, onnx_file in (("fp32", "generator.onnx"), ("fp16", "generator.fp16.onnx")):
        build = trt_mod.build_engine(out / onnx_file, work, f"{arch}-{resolution}-{precision}",
                                     target="tensorrt-rtx", batch_profile=(1, 16, 64), latent_dim=meta.latent_dim)
        row[f"rtx_{precision}_build_s"] = round(build.seconds, 2)
        row[f"rtx_{precision}_mb"] = round(build.size_bytes / 2**20, 2)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="32,64,128,256")
    parser.add_argument("--batches", default="1,7,64")
    parser.add_argument("--base", type=int, default=64)
    parser.add_argument("--tag", default="export_parity")
    args = parser.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("mlp", 32)] + [("dcgan", int(r)) for r in args.resolutions.split(",")]
        for arch, res in cases:
            rows.append(one(arch, res, args.base, batches, Path(tmp)))
            print(json.dumps(rows[-1]), file=sys.stderr)
    import onnxruntime
    import tensorrt_rtx

    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, no GPU",
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "tensorrt_rtx": tensorrt_rtx.__version__, "command": " ".join(sys.argv)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps({**info, "rows": rows}, indent=2) + "\n")
    cols = ["arch", "resolution", "params", "export_and_parity_s", "onnx_mb", "fp32_max_abs", "fp16_min_psnr_db",
            "fp16_nonfinite", "fp16_kept_fp32", "rtx_fp32_build_s", "rtx_fp32_mb", "rtx_fp16_build_s", "rtx_fp16_mb"]
    lines = [f"# Export parity and TensorRT-RTX builds ({info['date']})", "",
             f"Machine: {info['machine']}; torch {info['torch']}, onnxruntime {info['onnxruntime']}, "
             f"tensorrt-rtx {info['tensorrt_rtx']}. Command: `{info['command']}`. Parity batches "
             f"{list(batches)}; RTX profile 1/16/64.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [row[c] if c != "fp32_max_abs" else f"{row[c]:.2e}" for c in cols]
        cells = [", ".join(c) or "none" if isinstance(c, dict) else c for c in cells]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    (RESULTS / f"{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

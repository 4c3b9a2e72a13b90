"""`tgan-export RUN_DIR|CHECKPOINT|FILE.pkl|FILE.pt --out DIR`: ONNX (+fp16, TensorRT, TensorRT-RTX, Triton) with a
parity report; NVlabs / rosinality StyleGAN files are converted to our checkpoint first (docs/stylegan.md)."""

from __future__ import annotations

from pathlib import Path

import click

from tgan_deploy.cli import TganCommand
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export import tensorrt as trt_mod
from tgan_deploy.export.pipeline import ExportOptions, ParityFailed, run_export


@click.command("export", cls=TganCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Export directory to create (generator.onnx, model.json, parity.md, ...).")
@click.option("--fp16", is_flag=True, help="Also write generator.fp16.onnx (fp16 inside, fp32 input/output); "
              "with --trt/--trt-rtx the engine is built from it.")
@click.option("--trt", is_flag=True, help="Build a TensorRT engine for this machine's GPU (needs the [tensorrt] "
              "extra and a CUDA GPU; without them the ONNX part completes and the exit code is 3).")
@click.option("--trt-rtx", is_flag=True, help="Build a TensorRT-RTX engine (ahead of time, works without a GPU; "
              "runs on RTX GPUs, Ampere and later).")
@click.option("--min-batch", default=1, show_default=True, help="Smallest batch of the engines' optimisation profile.")
@click.option("--opt-batch", type=int, default=None, help="Batch the engines are tuned for [default: 16 clamped "
              "into the batch range].")
@click.option("--max-batch", default=64, show_default=True,
              help="Largest batch of the engines' profile; also Triton's max_batch_size and the parity cap.")
@click.option("--opset", default=onnx_mod.DEFAULT_OPSET, show_default=True,
              help=f"ONNX opset ({onnx_mod.MIN_OPSET} up to what the installed onnx knows).")
@click.option("--output", "output", type=click.Choice(["float", "uint8"]), default="float", show_default=True,
              help="float: float32 images in [-1, 1]; uint8: pixels [0, 255] computed in the graph "
              "(torch-fidelity's convention for ONNX generators).")
@click.option("--checkpoint", default="auto", show_default=True, metavar="best|last|PATH",
              help="Which checkpoint of a run directory: best (checkpoints/best.pt, the best evaluation during "
                   "training), last (the newest step), or a file (also looked up in RUN/checkpoints/). auto: best if "
                   "the run has one, else last.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="Export the EMA generator (falls back to raw weights if the run kept none) or the raw one.")
@click.option("--triton-repo", type=click.Path(path_type=Path), default=None,
              help="Also add Triton model folders (config.pbtxt + 1/model.*) to this model repository.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Exit non-zero (1) when the parity report fails its tolerances.")
@click.option("--force", is_flag=True, help="Replace an existing --out (and Triton model folders of the same name).")
@click.option("--opt-level", default=trt_mod.DEFAULT_OPT_LEVEL, show_default=True,
              help="TensorRT builder optimisation level 0..5 (higher: longer build, maybe faster engine).")
@click.option("--psi", type=float, default=None,
              help="Style models: StyleGAN truncation in w baked into generator.onnx (recorded as default_psi) "
                   "[default: 1, the original G]; mapping.onnx and synthesis.onnx are never truncated.")
@click.option("--parity-batches", default="1,7,64", show_default=True, callback=lambda _c, _p, v: _batches(v),
              help="Comma-separated batch sizes of the parity check (capped by the batch range).")
def main(source: Path, out: Path, fp16: bool, trt: bool, trt_rtx: bool, min_batch: int, opt_batch: int | None,
         max_batch: int, opset: int, output: str, weights: str, triton_repo: Path | None, check: bool, force: bool,
         opt_level: int, parity_batches: tuple[int, ...], checkpoint: str, psi: float | None) -> None:
    """Export the generator of a checkpoint (or a run directory's best one, else its newest) and check it against
    PyTorch. SOURCE may also be an NVlabs StyleGAN2-ADA / StyleGAN3 snapshot (.pkl) or a rosinality StyleGAN2
    checkpoint (.pt): it is read without executing anything, converted into --out/checkpoint.pt (fine-tune it
    with tgan-train --init-from), and exported as generator.onnx, mapping.onnx and synthesis.onnx.

    Exit codes: 0 done; 1 parity failed (artefacts written for inspection); 2 bad input (nothing
    written); 3 a requested TensorRT/TensorRT-RTX engine cannot be built here (ONNX artefacts and the
    parity report are complete).
    """
    opts = ExportOptions(source=source, out=out, fp16=fp16, trt=trt, trt_rtx=trt_rtx, min_batch=min_batch,
                         opt_batch=opt_batch, max_batch=max_batch, opset=opset, output=output, weights=weights,
                         triton_repo=triton_repo, check=check, force=force, opt_level=opt_level,
                         parity_batches=parity_batches, checkpoint=checkpoint, psi=psi)

    def say(line: str) -> None:
        click.echo(line, err=True)

    try:
        meta, report = run_export(opts, say)
    except (ParityFailed, trt_mod.EngineUnavailable):
        click.echo((out / "parity.md").read_text() if (out / "parity.md").is_file() else "")
        raise
    click.echo(report.markdown())
    click.echo(f"wrote {out}: model.json, {', '.join(sorted(set(meta.files.values())))}", err=True)


def _batches(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of batch sizes, e.g. 1,7,64") from None


if __name__ == "__main__":
    main()

"""`make demo`: the main job end to end on a built-in default, one function per stage.

1. train:  T-SGAN on builtin:mnist5k (5,000 real MNIST digits shipped in a wheel) at 32 px, one channel, a
           narrow DCGAN, a few minutes on a CPU -> DEMO_OUT/run/ (checkpoints, metrics, plots, samples.png),
           ending with one evaluation of the trained model (tgan-eval's digit metrics; the project's MNIST
           classifier is trained once, about 40 s, and cached).
2. export: the EMA generator -> DEMO_OUT/export/ (fp32 + fp16 ONNX, a TensorRT-RTX engine when
           tensorrt-rtx is installed, model.json) with the parity report against PyTorch printed.
3. sample: the runtime (ONNX Runtime, no torch needed) turns seeds 0..63 into DEMO_OUT/grid.png, and the
           same seeds through the torch backend on the checkpoint must give the same images; the last line
           names the grid and the trained model's score.
"""

from __future__ import annotations

from pathlib import Path

import click

from tgan_deploy.cli import TganCommand
from tgan_deploy.config import TrainConfig

# About 40 ms per iteration on 2 idle CPU cores, in fp32: bf16 autocast is slower for a model this narrow
# (benchmarks/results/amp-cpu.md).
DEMO_STEPS = 300


def demo_config(out: Path, steps: int) -> TrainConfig:
    """T-SGAN with the reference's losses, pairing and optimiser, scaled down to train on a CPU in minutes."""
    return TrainConfig.from_dict({
        "model": {"resolution": 32, "channels": 1, "base_channels": 16, "latent_dim": 64, "head_hidden": 128},
        "objective": {"name": "t-sgan", "pairing": "index"},
        # The reference's Adam and 1:2 critic:generator schedule; a smaller batch for CPU speed.
        "optim": {"batch_size": 32, "lr_g": 2e-4, "lr_d": 2e-4, "ema_decay": 0.99},
        "data": {"source": "builtin:mnist5k"},
        # One evaluation, after the last iteration (train/evaluation.py; it also writes best.pt, which export takes).
        "run": {"out": str(out / "run"), "steps": steps, "device": "auto", "seed": 0, "log_every": 50,
                "sample_every": 100, "checkpoint_every": 100, "keep_last": 2, "tensorboard": False,
                "eval_every": steps},
    })


def train_stage(out: Path, steps: int = DEMO_STEPS) -> Path:
    """Train the demo model; returns the run directory (RUN/samples.png is the latest sample grid)."""
    from tgan_deploy.train.loop import train

    cfg = demo_config(out, steps)
    run_dir = train(cfg, resume=True)  # re-running `make demo` continues (or finds the run complete)
    click.echo(f"demo: trained T-SGAN for {steps} iterations; sample grid: {run_dir / 'samples.png'}")
    return run_dir


def export_stage(run_dir: Path, out: Path) -> Path:
    """Export the run's EMA generator (fp32 + fp16 ONNX, RTX engine if possible); print the parity table."""
    import importlib.util

    from tgan_deploy.export.pipeline import ExportOptions, run_export

    export_dir = out / "export"
    rtx = importlib.util.find_spec("tensorrt_rtx") is not None  # builds engines without a GPU
    opts = ExportOptions(source=run_dir, out=export_dir, fp16=True, trt_rtx=rtx, force=True)
    _, report = run_export(opts, say=lambda line: click.echo(f"export: {line}", err=True))
    click.echo(report.table())
    click.echo(f"demo: exported to {export_dir} (parity {'PASS' if report.passed else 'FAIL'})")
    return export_dir


def score(run_dir: Path) -> str:
    """The trained model's evaluation in a few words ("cfd 12.3 at iteration 300 ..."), from its checkpoint."""
    from tgan_deploy.checkpoint import load_checkpoint

    record = load_checkpoint(run_dir, which="last").get("evaluation")
    if not isinstance(record, dict):  # a run directory from before the demo evaluated
        return f"not evaluated (score it with `tgan-eval {run_dir}`)"
    return (f"{record['metric']} {record['value']:.4g} at iteration {record['step']} "
            "(lower is better; docs/evaluation.md)")


def sample_stage(export_dir: Path, run_dir: Path, out: Path, seeds: range = range(64)) -> Path:
    """Sample seeds through the runtime on ONNX Runtime; check them against the torch backend; write a grid."""
    import numpy as np

    from tgan_deploy.runtime import Sampler
    from tgan_deploy.runtime.images import save_grid

    with Sampler.open(export_dir) as onnx_sampler, Sampler.open(run_dir, backend="torch") as torch_sampler:
        images = onnx_sampler.sample(seeds=list(seeds))
        reference = torch_sampler.sample(seeds=list(seeds))
        backend = f"{onnx_sampler.backend} {onnx_sampler.providers}"
    # uint8 pixels: rounding may flip a pixel by one level where the float outputs straddle a .5 boundary.
    worst = int(np.abs(images.astype(np.int16) - reference.astype(np.int16)).max())
    grid = out / "grid.png"
    save_grid(grid, images, columns=8)
    click.echo(f"demo: {len(seeds)} images from {backend}; max pixel difference vs the torch backend: {worst}")
    click.echo(f"demo: sample grid written to {grid}; trained model: {score(run_dir)}")
    return grid


@click.command(cls=TganCommand)
@click.option("--out", default="demo-out", show_default=True, help="Directory for everything the demo writes.")
@click.option("--steps", default=DEMO_STEPS, show_default=True, help="Training iterations (1 critic + 2 generator "
                                                                    "steps each).")
def main(out: str, steps: int) -> None:
    """Train briefly on built-in MNIST, export (fp32, fp16), sample through the runtime, check parity."""
    root = Path(out)
    run_dir = train_stage(root, steps)
    export_dir = export_stage(run_dir, root)
    sample_stage(export_dir, run_dir, root)

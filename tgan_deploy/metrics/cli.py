"""`tgan-eval RUN_DIR|CHECKPOINT`: score a generator with the metrics that fit its data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from tgan_deploy.cli import TganCommand
from tgan_deploy.metrics.defaults import DEFAULTS

# metric key -> (label, format) for the printed table
LABELS = {
    "modes": ("modes covered", "{:.0f}"),
    "hq_percent": ("high-quality samples %", "{:.2f}"),
    "reverse_kl": ("reverse KL (nats)", "{:.4f}"),
    "cfd": ("classifier Fréchet distance (CFD)", "{:.4f}"),
    "fd": ("Fréchet distance (FD)", "{:.4f}"),
    "kid": ("KID x 1000 (classifier features)", "{:.4f}"),
    "kid_std": ("KID std x 1000", "{:.4f}"),
    "precision": ("precision (k-NN)", "{:.4f}"),
    "recall": ("recall (k-NN)", "{:.4f}"),
    "class_coverage": ("classes covered", "{:.0f}"),
    "class_kl": ("KL(predicted classes || uniform)", "{:.4f}"),
    "conditional_accuracy": ("conditional accuracy (class average)", "{:.1%}"),
}
SCALE = {"kid": 1000.0, "kid_std": 1000.0}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['data']}: {result['n']} samples, seeds {result['seed']}..{result['seed'] + result['n'] - 1}",
             f"feature space: {result['feature_space']}"]
    details = result["details"]
    totals = {"modes": details.get("total_modes"), "class_coverage": details.get("total_classes")}
    for key, value in result["metrics"].items():
        label, fmt = LABELS.get(key, (key, "{:.4g}"))
        text = "n/a" if math.isnan(value) else fmt.format(value * SCALE.get(key, 1.0))
        if totals.get(key):
            text += f" / {totals[key]}"
        lines.append(f"  {label:<36} {text}")
    counts = details.get("per_mode_counts", details.get("class_counts"))
    if counts is not None:
        lines.append(f"  {'HQ samples per mode' if 'per_mode_counts' in details else 'predicted classes':<36} "
                     f"{' '.join(map(str, counts))}")
    if "conditional_accuracy_per_class" in details:
        per_class = details["conditional_accuracy_per_class"]
        shares = " ".join("n/a" if math.isnan(a) else f"{100 * a:.0f}" for a in per_class)
        lines.append(f"  {'conditional accuracy per class, %':<36} {shares}")
    if "classifier" in details:
        lines.append(f"  classifier held-out accuracy         {100 * details['classifier']['test_accuracy']:.1f} %")
    return "\n".join(lines)


def _json_safe(obj: Any) -> Any:
    """NaN (undefined metric) -> null: strict JSON has no NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


@click.command("eval", cls=TganCommand)
@click.argument("source", metavar="RUN_DIR|CHECKPOINT", type=click.Path(path_type=Path))
@click.option("--n", "n", default=DEFAULTS["n"], show_default=True, type=click.IntRange(min=10),
              help="Generator samples to score (PacGAN's protocol uses 2,500).")
@click.option("--seed", default=DEFAULTS["seed"], show_default=True, type=click.IntRange(min=0),
              help="First seed: samples use seeds SEED..SEED+N-1, the same latents tgan-sample uses. "
                   "For independent repeats use non-overlapping ranges (0, N, 2N, ...).")
@click.option("--weights", default=DEFAULTS["weights"], show_default=True, type=click.Choice(["ema", "raw"]),
              help="Generator weights: the EMA copy (falls back to raw if the run kept none) or the raw ones.")
@click.option("--features", "features", default=None, metavar="PATH",
              help="TorchScript feature detector (Inception's inception-2015-12-05.pt, or any with its call "
                   "signature): FD and KID in its space against the run's training images. Default for image data "
                   "other than the digits: the one in ~/.cache/tgan-deploy/features/ if it is there.")
@click.option("--checkpoint", "which", type=click.Choice(["auto", "best", "last"]), default="auto",
              show_default=True, help="Of a run directory: best.pt (auto: if it has one) or the newest step.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full result (metrics, per-mode/class counts, checkpoint) to this JSON file.")
def main(source: Path, n: int, seed: int, weights: str, features: str | None, which: str,
         json_out: Path | None) -> None:
    """Score a generator: mode coverage on 2-D mixtures, classifier metrics on digits, FD/KID in a feature
    detector's space on other images.

    RUN_DIR|CHECKPOINT is a run directory (its best.pt if it has one, else its newest checkpoint) or a
    checkpoint file.
    The metrics follow the run's data (data.source): builtin:ring8/grid25 get PacGAN's modes, high-quality %
    and reverse KL; builtin:mnist5k/digits get a project-trained classifier's Fréchet distance (CFD), KID,
    precision/recall, class coverage and class KL (trained once, under a minute, then cached). See
    docs/evaluation.md for definitions and for Inception FID.
    """
    from tgan_deploy.checkpoint import load_generator
    from tgan_deploy.checkpoint_metadata import sampling_weights
    from tgan_deploy.io import write_json_atomic
    from tgan_deploy.metrics.evaluate import data_kind, evaluate
    from tgan_deploy.metrics.features import find_detector

    generator, cfg, state = load_generator(source, weights=weights, which=which)
    used = sampling_weights(state, weights)  # the weights load_generator loaded
    detector = find_detector(features or "") if features or data_kind(cfg) == "unsupported" else None
    result = evaluate(generator, cfg, n=n, seed=seed, progress=True, detector=detector)
    result["checkpoint"] = {"path": state["path"], "step": state.get("step"), "weights": used}
    click.echo(f"{state['path']} (step {state.get('step')}, {used} weights)")
    click.echo(format_table(result))
    if json_out is not None:
        write_json_atomic(json_out, _json_safe(result))
        click.echo(f"wrote {json_out}")


if __name__ == "__main__":
    main()

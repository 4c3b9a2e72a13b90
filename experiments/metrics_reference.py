"""Reference points for tgan-eval's numbers: what a perfect and an untrained generator score.

- 2-D mixtures: samples drawn from the mixture itself (the best any generator can do), 10 repeats of
  2,500 samples: mean ± standard error, PacGAN's reporting convention.
- Digits: the classifier's held-out accuracy and training time, then `evaluate()` on (a) real training
  digits replayed as a "generator" (the real-vs-real floor of CFD / KID / precision / recall) and (b) an
  untrained DCGAN generator (a ceiling), both at 32 px grayscale.

Writes experiments/results/metrics_reference.{json,md}. Run: python experiments/metrics_reference.py
"""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgan_deploy.config import TrainConfig
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.io import write_json_atomic, write_text_atomic
from tgan_deploy.metrics._digits import to_resolution
from tgan_deploy.metrics.classifier import load_classifier, split
from tgan_deploy.metrics.evaluate import evaluate
from tgan_deploy.metrics.toy2d import mode_metrics
from tgan_deploy.models import build_generator

RESULTS = Path(__file__).resolve().parent / "results"


class Replay(torch.nn.Module):
    """Returns the next real images in order: a 'generator' that reproduces the training data."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.images, self.next = images, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.images[self.next:self.next + len(z)]
        self.next += len(z)
        return out


def toy_rows() -> list[dict[str, Any]]:
    rows = []
    for name, mixture in MIXTURES.items():
        runs = [mode_metrics(mixture.sample(2500, np.random.default_rng(s)), mixture) for s in range(10)]
        row: dict[str, Any] = {"data": name, "generator": "samples of the mixture itself"}
        for key in ("modes", "hq_percent", "reverse_kl"):
            values = np.array([getattr(r, key) for r in runs], dtype=np.float64)
            row[key] = float(values.mean())
            row[key + "_se"] = float(values.std(ddof=1) / np.sqrt(len(values)))
        rows.append(row)
    return rows


def digit_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    classifiers, rows = [], []
    for dataset in ("mnist5k", "digits"):
        start = time.perf_counter()
        clf = load_classifier(dataset, progress=True)
        classifiers.append({"data": dataset, "test_accuracy": clf.test_accuracy, "held_out": clf.recipe.holdout,
                            "load_or_train_s": round(time.perf_counter() - start, 1), "cache": str(clf.path)})
        cfg = TrainConfig.from_dict({"model": {"resolution": 32, "channels": 1},
                                     "data": {"source": f"builtin:{dataset}"}})
        (x_train, _), _ = split(clf.recipe)
        n = min(2500, len(x_train))
        torch.manual_seed(0)
        for label, generator in [("real training digits (replayed)", Replay(to_resolution(x_train, 32))),
                                 ("untrained DCGAN generator", build_generator(cfg.model))]:
            start = time.perf_counter()
            result = evaluate(generator, cfg, n=n, classifier=clf)
            rows.append({"data": dataset, "generator": label, "n": n, **result["metrics"],
                         "eval_s": round(time.perf_counter() - start, 1)})
    return classifiers, rows


def main() -> None:
    torch.set_num_threads(2)
    toy = toy_rows()
    classifiers, digits = digit_rows()
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.processor() or '?'}",
            "torch": torch.__version__}
    write_json_atomic(RESULTS / "metrics_reference.json",
                      {"meta": meta, "toy2d": toy, "classifiers": classifiers, "digits": digits})
    md = [f"# tgan-eval reference points\n\n{meta['date']}, {meta['machine']}, torch {meta['torch']}. "
          "Produced by experiments/metrics_reference.py.\n",
          "## 2-D mixtures: samples of the mixture itself (10 x 2,500 samples, mean ± s.e.)\n",
          "| data | modes | HQ % | reverse KL |", "|---|---|---|---|"]
    md += [f"| {r['data']} | {r['modes']:.1f} ± {r['modes_se']:.1f} | {r['hq_percent']:.2f} ± {r['hq_percent_se']:.2f} "
           f"| {r['reverse_kl']:.4f} ± {r['reverse_kl_se']:.4f} |" for r in toy]
    md += ["\n## Digit classifiers\n", "| data | held-out digits | held-out accuracy | load or train (s) |",
           "|---|---|---|---|"]
    md += [f"| {c['data']} | {c['held_out']} | {100 * c['test_accuracy']:.1f} % | {c['load_or_train_s']} |"
           for c in classifiers]
    md += ["\n## Digit metrics at 32 px (reference = held-out digits)\n",
           "| data | generator | n | CFD | KID x 1000 | precision | recall | classes covered | class KL | eval (s) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['data']} | {r['generator']} | {r['n']} | {r['cfd']:.3f} | {1000 * r['kid']:.3f} | "
           f"{r['precision']:.3f} | {r['recall']:.3f} | {r['class_coverage']:.0f} | {r['class_kl']:.4f} | "
           f"{r['eval_s']} |" for r in digits]
    write_text_atomic(RESULTS / "metrics_reference.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

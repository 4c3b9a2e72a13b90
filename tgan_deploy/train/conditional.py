"""Class-conditional training switched on from the data: `--conditional` (config data.conditional).

The data decides the classes (data/: builtin digits and mixtures, class folders, an .npz `labels` array);
`configure` copies them into model.num_classes / model.classes, so the checkpoint, RUN_DIR/config.yaml and
every export carry them. Labelled data trained without --conditional gets one line saying how to use the
labels (the complaint this answers: training silently ignored them); --conditional on unlabelled data is a
one-line error naming the ways to give labels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tgan_deploy.config import TrainConfig
from tgan_deploy.data import TrainingData
from tgan_deploy.errors import ConfigError, DataError
from tgan_deploy.train.settings import Provenance

HOW_TO_LABEL = ("put the images in one sub-folder per class (DATA/CLASS/...), add a 'labels' array to the .npz, "
                "or use builtin:mnist5k / digits / ring8 / grid25")


def configure(cfg: TrainConfig, data: TrainingData, provenance: Provenance | None,
              say: Callable[[str], None]) -> None:
    """Set cfg.model.num_classes / classes from `data` when cfg.data.conditional; else hint or check."""
    model = cfg.model
    if not cfg.data.conditional:
        if model.num_classes:
            raise ConfigError(f"model.num_classes is {model.num_classes} but data.conditional is off: "
                              "pass --conditional, or leave model.num_classes at 0")
        if data.classes:
            say(f"note: {data.source} has {data.num_classes} classes ({_names(data.classes)}); "
                "pass --conditional to train a class-conditional model")
        return
    if data.labels is None:
        raise DataError(f"--conditional needs labelled data, but {data.source} has no labels: {HOW_TO_LABEL}")
    if model.classes and model.classes != data.classes:  # e.g. --resume after the class folders changed
        raise DataError(f"{data.source} has classes {_names(data.classes)}, but this run was configured with "
                        f"{_names(model.classes)}: use the run's data, or start a new run (--out, --force)")
    model.num_classes, model.classes = data.num_classes, list(data.classes)
    if provenance is not None:
        for key in ("model.num_classes", "model.classes"):
            provenance.sources[key] = f"data {data.source}"


def cycled_labels(count: int, num_classes: int, per_label: int = 1,
                  device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Labels of `count` fixed samples: `per_label` consecutive samples per class, cycling through the classes
    (a grid with one class per row: per_label = the row length); None for an unconditional model."""
    if num_classes == 0:
        return None
    return (torch.arange(count, device=device) // per_label) % num_classes


def _names(classes: list[str], shown: int = 5) -> str:
    more = f", ... {len(classes) - shown} more" if len(classes) > shown else ""
    return ", ".join(classes[:shown]) + more

"""The one cache root: everything tgan-deploy can rebuild lives in a folder of it (README.md, Caches).

    $TGAN_DEPLOY_CACHE, else $XDG_CACHE_HOME/tgan-deploy, else ~/.cache/tgan-deploy
        classifiers/     the digit classifiers of the evaluation (metrics/classifier.py)
        features/        feature detectors such as Inception's TorchScript file (metrics/features.py)
        eval-reference/  features of the real images per (detector, images) (metrics/features.py)
        data/            decoded image folders (data/folder.py; data.cache_dir overrides it per run)
        ext/             compiled pair-head extensions (ops/build.py)

Every entry is keyed by what it was made from, so any of it may be deleted at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TGAN_DEPLOY_CACHE"


def cache_root() -> Path:
    """$TGAN_DEPLOY_CACHE, else the XDG base directory spec's cache home ($XDG_CACHE_HOME or ~/.cache)/tgan-deploy."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tgan-deploy"


def cache_dir(name: str) -> Path:
    """The cache folder of one kind of entry (one of the names in this module's docstring)."""
    return cache_root() / name

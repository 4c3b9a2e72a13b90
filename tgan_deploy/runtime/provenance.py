"""How a file the runtime writes was made (model, seeds, latent controls), stored inside the file itself.

PNGs carry it as text chunks (`Software` and `tgan-deploy`, the latter one line of JSON), GIFs in their
comment, MP4s in their `comment` tag, .npz files as a `provenance` string array. Everything in it is
deterministic (no dates, no host names), so the same command writes the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tgan_deploy import __version__

PNG_KEY = "tgan-deploy"


def provenance(sampler: Any, **controls: Any) -> dict[str, Any]:
    """The model's identity (what its metadata knows) plus `controls` (seeds, truncation, psi, walk, ...)."""
    meta = sampler.metadata
    info: dict[str, Any] = {"software": f"tgan-deploy {__version__}", "model": Path(sampler.source).name,
                            "latent": "tgan_deploy.runtime.latents (docs/runtime.md, Latent controls)"}
    for key in ("source_checkpoint_sha256", "source_step", "weights", "init_from_sha256", "family"):
        if meta.get(key) not in (None, ""):
            info[key] = meta[key]
    if meta.get("seed_rule", "tgan") != "tgan":  # our own rule is the default: recorded only when it differs
        info["seed_rule"] = meta["seed_rule"]
    return {**info, **controls}


def w_info(**controls: Any) -> dict[str, Any]:
    """The w-space controls that were given (psi_cutoff, mix_seeds, mix_cutoff): absent ones are left out, so
    the provenance of a plain run stays as it was."""
    return {key: value for key, value in controls.items() if value is not None}


def label_info(sampler: Any, label: Any) -> dict[str, Any]:
    """{"label": index, "class": name} for one label of a class-conditional model; {} otherwise."""
    return sampler.label_record(label) if sampler.num_classes and label is not None else {}


def info_text(info: Mapping[str, Any]) -> str:
    """The canonical one-line JSON of `info` (sorted keys, ASCII): the same info gives the same bytes."""
    return json.dumps(info, sort_keys=True, separators=(",", ":"))


def png_text(info: Mapping[str, Any]) -> dict[str, str]:
    """PNG text chunks for `info`: the standard `Software` keyword and the full JSON under `tgan-deploy`."""
    return {"Software": str(info.get("software", f"tgan-deploy {__version__}")), PNG_KEY: info_text(info)}


def read_png_info(path: str | Path) -> dict[str, Any]:
    """The `tgan-deploy` JSON of a PNG this runtime wrote ({} if it has none)."""
    from PIL import Image

    with Image.open(path) as image:
        text = image.info.get(PNG_KEY)
    return json.loads(text) if isinstance(text, str) else {}

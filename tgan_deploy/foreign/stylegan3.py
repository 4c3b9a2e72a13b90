"""NVlabs stylegan3 generator records -> the constructor kwargs of our StyleGAN3Generator (config
model.style["generator"]), checked against the file's layer schedule. foreign/convert.py does the rest (the
discriminator is StyleGAN2's, read by its StyleGAN2 path).

A stylegan3 `Generator` records `init_kwargs` = (z_dim, c_dim, w_dim, img_resolution, img_channels,
mapping_kwargs, **synthesis_kwargs); every layer's geometry (sizes, sampling rates, paddings, filter lengths)
follows from them. models/stylegan3.py recomputes that geometry; `check_layer_geometry` compares it with the
attributes each SynthesisLayer record carries, so a fork that changed the schedule is refused by name instead of
loading into wrong shapes or paddings. The filters themselves are the file's buffers (state dict), never redesigned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy.errors import CheckpointError
from tgan_deploy.foreign.unpickler import PersistentRecord
from tgan_deploy.models.stylegan3 import SYNTHESIS_DEFAULTS, TRAINING_ONLY, AliasFreeLayer, SynthesisNetwork

_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
# stylegan3's MappingNetwork(z_dim, c_dim, w_dim, num_ws, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998)
_MAPPING_ARGS = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier", "w_avg_beta": "w_avg_beta"}


def _plain(value: Any) -> Any:
    """numpy scalars (pickled kwargs hold some) as Python numbers, so the config stays YAML / weights-only safe."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def stylegan3_generator_kwargs(record: PersistentRecord, path: Path) -> dict[str, Any]:
    """StyleGAN3Generator kwargs from the G / G_ema record of `path`; CheckpointError (one line) for arguments the
    original does not define or a layer schedule other than the one they define."""
    kwargs = _plain(record.init_kwargs)
    if record.init_args:
        raise CheckpointError(f"{path}: the generator was built with positional arguments, which a stylegan3 "
                              "snapshot never records: pass a network-snapshot-*.pkl written by NVlabs stylegan3")
    missing = [k for k in _GENERATOR_ARGS if k not in kwargs and k != "mapping_kwargs"]
    if missing:
        raise CheckpointError(f"{path}: the StyleGAN3 generator's init_kwargs lack {missing}: pass a snapshot "
                              "written by NVlabs stylegan3")
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    synthesis = {k: v for k, v in kwargs.items() if k not in _GENERATOR_ARGS}
    unknown = sorted(set(mapping) - set(_MAPPING_ARGS)) + sorted(
        set(synthesis) - set(SYNTHESIS_DEFAULTS) - set(TRAINING_ONLY))
    if unknown:
        raise CheckpointError(f"{path}: StyleGAN3 generator arguments {unknown} are not ones NVlabs stylegan3 "
                              "defines (a fork?): only the original architecture is supported")
    synthesis_record = record.children.get("synthesis")
    if not isinstance(synthesis_record, PersistentRecord):
        raise CheckpointError(f"{path}: the StyleGAN3 generator has no synthesis network")
    try:
        ours = SynthesisNetwork(kwargs["w_dim"], kwargs["img_resolution"], kwargs["img_channels"], **synthesis)
    except (ValueError, ZeroDivisionError, TypeError) as err:
        raise CheckpointError(f"{path}: the StyleGAN3 arguments do not define a network ({err})") from None
    check_layer_geometry(ours, synthesis_record, path)
    return {"z_dim": kwargs["z_dim"], "w_dim": kwargs["w_dim"], "resolution": kwargs["img_resolution"],
            "channels": kwargs["img_channels"], "num_classes": kwargs["c_dim"],
            **{ours_name: mapping[theirs] for theirs, ours_name in _MAPPING_ARGS.items() if theirs in mapping},
            "synthesis": synthesis}


# SynthesisLayer attributes that fix the computation, compared with our LayerGeometry field of the same meaning.
_CHECKED_ATTRS = ("in_channels", "out_channels", "in_size", "out_size", "is_torgb", "conv_kernel", "up_factor",
                  "up_taps", "down_factor", "down_taps", "down_radial", "padding")


def check_layer_geometry(synthesis: SynthesisNetwork, record: PersistentRecord, path: Path) -> None:
    """Each synthesis layer of our model has the name and geometry of the file's layer (CheckpointError if not)."""
    theirs = [str(n) for n in record.attrs.get("layer_names", [])]
    ours = synthesis.layer_names
    if theirs != ours:
        raise CheckpointError(f"{path}: the file's StyleGAN3 layers {theirs} differ from the ones its arguments "
                              f"define {ours} (a modified layer schedule?): only the original is supported")
    for name in ours:
        layer = synthesis.get_submodule(name)
        assert isinstance(layer, AliasFreeLayer)
        child = record.children.get(name)
        attrs = child.attrs if isinstance(child, PersistentRecord) else {}
        for attr in _CHECKED_ATTRS:
            mine = getattr(layer.geometry, attr)
            value = attrs.get(attr)
            value = [int(v) for v in np.ravel(value)] if value is not None else None
            expected = [int(v) for v in np.ravel(mine)]
            if attr in ("in_size", "out_size") and value is not None:
                expected = expected * (len(value) // max(len(expected), 1))  # the file stores (x, y)
            if value != expected:
                raise CheckpointError(f"{path}: StyleGAN3 layer {name} has {attr} {value}, the original's schedule "
                                      f"gives {expected}: the file was made by modified code, which is not "
                                      "supported")

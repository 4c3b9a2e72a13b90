"""NVlabs network snapshots (stylegan2-ada-pytorch and stylegan3 `network-snapshot-*.pkl`), read as records.

A snapshot is a pickled dict `{"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}` (older ones lack some
keys); the networks come back as `PersistentRecord`s (foreign/unpickler.py: nothing in the file is executed).
The architecture code that turns records into our modules lives in models/ and foreign/convert.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tgan_deploy.errors import CheckpointError
from tgan_deploy.foreign.unpickler import PersistentRecord, restricted_load
from tgan_deploy.io import file_sha256


@dataclasses.dataclass
class NVlabsSnapshot:
    path: Path
    sha256: str
    G: PersistentRecord | None
    G_ema: PersistentRecord
    D: PersistentRecord | None
    training_set_kwargs: dict[str, Any]

    @property
    def family(self) -> str:
        """"stylegan3" when the synthesis network starts from Fourier features (`SynthesisInput`), else
        "stylegan2" (a learned constant)."""
        synthesis = self.G_ema.children.get("synthesis")
        if isinstance(synthesis, PersistentRecord):
            first = synthesis.children.get("input")
            if isinstance(first, PersistentRecord) and first.class_name == "SynthesisInput":
                return "stylegan3"
        return "stylegan2"


def read_nvlabs_snapshot(path: str | Path) -> NVlabsSnapshot:
    """The networks of an NVlabs snapshot; UnsafePickleError / CheckpointError (one line) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: pass an NVlabs network snapshot (.pkl)")
    data = restricted_load(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not an NVlabs snapshot dict "
                              "(G, D, G_ema, ...): pass a network-snapshot-*.pkl written by stylegan2-ada-pytorch "
                              "or stylegan3")
    nets = {key: data.get(key) for key in ("G", "G_ema", "D")}
    for key, value in nets.items():
        if value is not None and not isinstance(value, PersistentRecord):
            raise CheckpointError(f"{path}: {key} is a {type(value).__name__}, not an NVlabs network: pass a "
                                  "snapshot written by stylegan2-ada-pytorch or stylegan3")
    g_ema = nets["G_ema"] or nets["G"]
    if g_ema is None:
        raise CheckpointError(f"{path} holds no generator (neither G_ema nor G): pass an NVlabs network snapshot")
    kwargs = data.get("training_set_kwargs")
    return NVlabsSnapshot(path=path, sha256=file_sha256(path), G=nets["G"], G_ema=g_ema, D=nets["D"],
                          training_set_kwargs=dict(kwargs) if isinstance(kwargs, dict) else {})

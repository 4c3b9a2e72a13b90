"""What `tgan-export SOURCE` was given: our checkpoint or run directory, or a foreign style-model file (an NVlabs
`.pkl` snapshot, a rosinality `.pt`) to convert into our checkpoint first. Recognised by reading the file's bytes,
never by unpickling it (foreign/unpickler.py and foreign/rosinality.py do the reading, executing nothing)."""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path
from typing import Any

from tgan_deploy.checkpoint import CHECKPOINT_FORMAT

NVLABS, ROSINALITY = "nvlabs-pkl", "rosinality-pt"
CONVERTED_CHECKPOINT = "checkpoint.pt"  # the converted file's name in the export directory
_PICKLE_PROTOCOL_2_PLUS = b"\x80"  # PROTO opcode: every pickle of protocol >= 2 starts with it


def foreign_format(path: Path) -> str | None:
    """NVLABS, ROSINALITY, or None for our own checkpoints / run directories (and files that are neither: the
    checkpoint loader then says what is wrong with them)."""
    if not path.is_file():
        return None
    if zipfile.is_zipfile(path):  # torch.save's archive: look at the strings of its pickle, unpickling nothing
        strings = _archive_strings(path)
        if CHECKPOINT_FORMAT not in strings and "g_ema" in strings:
            return ROSINALITY
        return None
    with open(path, "rb") as fh:
        raw_pickle = fh.read(1) == _PICKLE_PROTOCOL_2_PLUS
    # a raw pickle is an NVlabs snapshot (pickle.dump of a dict); a .pt/.pth raw pickle is torch's legacy format
    return NVLABS if raw_pickle and path.suffix not in (".pt", ".pth") else None


def _archive_strings(path: Path) -> set[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"), None)
            data = archive.read(name) if name else b""
        return {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    except (zipfile.BadZipFile, OSError, ValueError):
        return set()


def convert_foreign(path: Path) -> dict[str, Any]:
    """Our checkpoint dict of a foreign file (foreign/convert.py); one-line errors for files it refuses."""
    from tgan_deploy.foreign import convert  # type: ignore[attr-defined]

    return dict(convert.convert_file(path))

"""What a bulk output directory says about itself: the job, the progress journal, the manifest.

- `.tgan-job.json` (written first): the job's identity (model sha256, format, encoder, latent options,
  seeds, part size, shard, backend). A later run into the same --out compares its own identity with it:
  equal and --resume continues, different is refused (--force replaces), never mixed.
- `.tgan-progress.jsonl`: one line per completed part, appended and fsynced after the part's data is
  durable. It is what --resume trusts after a kill -9; a torn last line is dropped.
- `manifest.json` (written last, atomically): the identity, counts, per-part checksums and extra files.
  Then the two hidden files are removed, so a finished directory is its data plus manifest.json.
Nothing in these files depends on time or on the machine, so they are byte-identical across runs too.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from tgan_deploy.io import write_bytes_atomic, write_json_atomic

JOB_FILE = ".tgan-job.json"
JOURNAL_FILE = ".tgan-progress.jsonl"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def identity_differences(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """The identity fields that differ between two jobs."""
    return sorted(key for key in set(a) | set(b) if key not in ignore and a.get(key) != b.get(key))


class Journal:
    """The completed parts of an unfinished run: append-only JSON lines, each fsynced."""

    def __init__(self, out: Path) -> None:
        self.path = out / JOURNAL_FILE

    def read(self) -> dict[int, dict[str, Any]]:
        """Completed parts by index; rewrites the file without a torn last line so appends stay parseable."""
        records: dict[int, dict[str, Any]] = {}
        torn = False
        with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    records[int(record["part"])] = record
                except (ValueError, KeyError, TypeError):
                    torn = True  # only the last line can be torn (appends are sequential)
        if torn:  # drop the torn tail for good, so later appends follow a whole line
            write_bytes_atomic(self.path, b"".join(_line(records[part]) for part in sorted(records)))
        return records

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "ab") as fh:
            fh.write(_line(record))
            fh.flush()
            os.fsync(fh.fileno())


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True) + "\n").encode()


def write_manifest(out: Path, identity: dict[str, Any], parts: list[dict[str, Any]], files: dict[str, str],
                   count: int, extra: dict[str, Any]) -> None:
    write_json_atomic(out / MANIFEST_FILE, {"version": MANIFEST_VERSION, "job": identity, "count": count,
                                            "parts": parts, "files": files, **extra})


def remove_progress_files(out: Path) -> None:
    for name in (JOURNAL_FILE, JOB_FILE):
        (out / name).unlink(missing_ok=True)

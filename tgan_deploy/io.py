"""File helpers: atomic writes (a reader sees the old file or the complete new one, never half of one) and
content hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
_TEMPORARY = re.compile(r"\.(.+)\.[^.]+" + re.escape(TEMP_SUFFIX))  # .NAME.XXXXXXXX.tmp


def temporary_path(target: str | os.PathLike[str]) -> Path:
    """Create an empty file `.NAME.XXXXXXXX.tmp` beside `target` (NAME: its name) and return its path.

    O_EXCL makes it this caller's alone; mode 0666 lets the umask decide the permissions, as a plain open()
    does, so checkpoints and exports stay readable by a serving process running as another user (mkstemp's
    0600 would not; reading the umask to chmod afterwards is not thread-safe: bulk writers run in threads).
    """
    target = Path(target)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


def temporary_target(name: str) -> str | None:
    """The name of the file a temporary `.NAME.XXXXXXXX.tmp` was being written for; None if `name` is not one."""
    match = _TEMPORARY.fullmatch(name)
    return match.group(1) if match else None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path` (fsyncing the file before and the
    directory after, unless durable=False: then the caller syncs, e.g. a bulk part's files with one syncfs).

    On any exception (Ctrl-C included) the temporary file is removed and `path` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames in `directory` durable (POSIX); a no-op where directories cannot be opened or synced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems that cannot sync a directory
            raise
    finally:
        os.close(fd)


def link_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Make `target` the file `source` is, atomically: a hard link (no copy; a copy where the file system has no
    hard links) to a temporary name, renamed over `target`, so `target` is never half there."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB blocks (any size, flat memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

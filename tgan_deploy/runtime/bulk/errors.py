"""Errors of the bulk writer: one line each, naming the problem and the fix."""

from __future__ import annotations

from tgan_deploy.errors import TganError


class BulkOptionError(TganError, ValueError):
    """A bad bulk option (--format, --shard, --n, --shard-size) or an --out that cannot be used."""


class OutputInUseError(BulkOptionError):
    """--out holds another job's output (another model or options), or an unfinished run of this one."""


class BulkWriteError(TganError):
    """Writing failed mid-run (disk full, I/O error): the unfinished part is removed, --resume finishes the job."""

    exit_code = 1


class VerifyError(TganError):
    """`tgan-sample --verify` found a mismatch: a checksum, a count, an overlap, a missing part."""

    exit_code = 1

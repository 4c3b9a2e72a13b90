"""The output formats of a bulk job, each a `PartWriter`: files (png, jpeg, webp), tar shards, one npy array.

A writer turns a part (consecutive seeds, see plan.py) into bytes on disk; `encode` runs in the encoder
pool (Pillow and file writes release the GIL), `add` and the part calls run in the pipeline's thread, in
seed order. Nothing is ever visible under its final name half-written:
- files: `seed-XXXXXX.png` each written to a temporary `.seed-XXXXXX.png.XXXXXXXX.tmp` and renamed
  (io.atomic_path); a part's files are synced to disk together (syncfs) before the part is recorded;
- tar: `shard-XXXXXX.tar` (WebDataset: `KEY.png` + `KEY.json` per sample, KEY = sample_key: the seed, led by
  the class index in a class-conditional job, which adds `KEY.cls`) written to
  `.shard-XXXXXX.tar.XXXXXXXX.tmp`, fsynced, renamed when the part is complete;
- npy: rows written in place into `.images.npy.partial` (preallocated, header first), fsynced per part,
  renamed to `images.npy` when every part is in; `seeds.npy` (and `labels.npy` for a conditional job) beside it.
Every byte is a function of the seeds and options only (fixed encoder options, tar members with mtime 0,
uid/gid 0, no user names, mode 0644), so a resumed run writes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import os
import re
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tgan_deploy.io import atomic_path, file_sha256, fsync_dir, temporary_path, temporary_target
from tgan_deploy.runtime.images import ENCODER_OPTIONS, encode_image, seed_file_name

FORMATS = ("png", "jpeg", "webp", "npy", "tar")
FILE_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
NPY_PARTIAL = ".images.npy.partial"


class ByteBudget:
    """How many bytes the writers may still write; None: unlimited (the disk decides).

    The seam for the full-disk path: a budget raises a real OSError(ENOSPC) from the write call that would
    exceed it, before any byte of that write lands, exactly where a full file system raises it.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def spend(self, nbytes: int, path: Path) -> None:
        if self._left is None:
            return
        with self._lock:
            if nbytes > self._left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            self._left -= nbytes


def write_file(path: Path, data: bytes, budget: ByteBudget, fsync: bool = True) -> None:
    """`data` -> `path` atomically (io.atomic_path); fsync=False leaves durability to the caller (FilesWriter
    syncs a whole part's files at once)."""
    budget.spend(len(data), path)
    with atomic_path(path, durable=fsync) as tmp:
        tmp.write_bytes(data)


def sync_file_system(directory: Path) -> None:
    """Flush every written file on `directory`'s file system to disk: one syncfs(2) (Linux) for a part's
    files rather than an fsync per image file; os.sync() where syncfs is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(directory))
    finally:
        os.close(fd)


class PartWriter:
    """One format's writer; the pipeline calls open_part, add (in order), close_part per part, then finish."""

    def __init__(self, out: Path, image_format: str, budget: ByteBudget) -> None:
        self.out, self.format, self.budget = out, image_format, budget

    def encode(self, images: np.ndarray, seeds: Sequence[int]) -> Any:
        raise NotImplementedError

    def open_part(self, part: int, seeds: Sequence[int], first_row: int) -> None:
        raise NotImplementedError

    def add(self, payload: Any) -> None:
        raise NotImplementedError

    def close_part(self) -> dict[str, Any]:
        """Make the part durable; returns what the manifest records of it (its sha256, its file)."""
        raise NotImplementedError

    def abort_part(self) -> None:
        """Remove whatever the unfinished part wrote."""
        raise NotImplementedError

    def finish(self, seeds: Sequence[int]) -> dict[str, str]:
        """After the last part: files beyond the parts, name -> sha256."""
        return {}

    def owns(self, name: str) -> bool:
        """Whether a file name is one this format writes (for --force and --verify)."""
        raise NotImplementedError

    def remove_temporaries(self) -> None:
        """Delete what a killed run left half-written (never a complete file or the npy in progress)."""
        for entry in self.out.iterdir():
            target = temporary_target(entry.name)
            if target is not None and self.owns(target):
                entry.unlink()

    def part_sha256(self, part: dict[str, Any], seeds: Sequence[int], first_row: int) -> str:
        """Recompute a recorded part's checksum from the files (for --verify)."""
        raise NotImplementedError


PngText = Callable[[int], Mapping[str, str]]  # seed -> the tEXt chunks of its PNG (e.g. how it was made)


class FilesWriter(PartWriter):
    """One image file per seed: seed-XXXXXX.png / .jpg / .webp. A part's checksum: sha256 of its
    "name sha256" lines, so `--verify` can point at the file that differs."""

    def __init__(self, out: Path, image_format: str, budget: ByteBudget, png_text: PngText | None = None) -> None:
        super().__init__(out, image_format, budget)
        self.png_text = png_text
        self.suffix = FILE_SUFFIXES[image_format]
        self._pattern = re.compile(rf"seed-\d{{6,}}{re.escape(self.suffix)}")
        self._names: list[str] = []
        self._listing = hashlib.sha256()

    def encode(self, images: np.ndarray, seeds: Sequence[int]) -> list[tuple[str, str]]:
        written = []
        for image, seed in zip(images, seeds, strict=True):
            name = seed_file_name(seed, self.suffix)
            data = encode_image(image, self.format, self.png_text(seed) if self.png_text else None)
            write_file(self.out / name, data, self.budget, fsync=False)
            written.append((name, hashlib.sha256(data).hexdigest()))
        return written

    def open_part(self, part: int, seeds: Sequence[int], first_row: int) -> None:
        self._names, self._listing = [seed_file_name(s, self.suffix) for s in seeds], hashlib.sha256()

    def add(self, payload: list[tuple[str, str]]) -> None:
        for name, sha in payload:
            self._listing.update(f"{name} {sha}\n".encode())

    def close_part(self) -> dict[str, Any]:
        sync_file_system(self.out)  # the part's files and their renames, durable before the journal says so
        self._names = []  # complete: nothing for abort_part to remove any more
        return {"sha256": self._listing.hexdigest()}

    def abort_part(self) -> None:
        for name in self._names:
            (self.out / name).unlink(missing_ok=True)

    def owns(self, name: str) -> bool:
        return self._pattern.fullmatch(name) is not None

    def part_sha256(self, part: dict[str, Any], seeds: Sequence[int], first_row: int) -> str:
        listing = hashlib.sha256()
        for seed in seeds:
            name = seed_file_name(seed, self.suffix)
            listing.update(f"{name} {file_sha256(self.out / name)}\n".encode())
        return listing.hexdigest()


def shard_name(part: int) -> str:
    return f"shard-{part:06d}.tar"


# A labelled sample's key leads with its class index: a --per-class tree reuses the same seeds in every class, and
# its keys must still be unique across the tree (read as one WebDataset, `synth/*/shard-*.tar`). No dots: a
# WebDataset reader takes the key up to the first dot of a member's name.
LABELLED_KEY = "{label:04d}-{seed:06d}"


def sample_key(seed: int, label: int | None = None) -> str:
    """A WebDataset sample's key: XXXXXX (the seed), or LLLL-XXXXXX for a sample of class LLLL."""
    return f"{seed:06d}" if label is None else LABELLED_KEY.format(label=int(label), seed=seed)


class _HashingFile:
    """A write-only file object for tarfile that hashes and budgets every byte on its way to disk."""

    def __init__(self, fh: BinaryIO, budget: ByteBudget, path: Path) -> None:
        self.fh, self.budget, self.path, self.digest = fh, budget, path, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.budget.spend(len(data), self.path)
        self.digest.update(data)
        return self.fh.write(data)

    def tell(self) -> int:
        return self.fh.tell()


class TarWriter(PartWriter):
    """WebDataset shards: part k -> shard-XXXXXX.tar holding KEY.png and KEY.json per sample, in seed order.

    Written with the standard tarfile module (ustar, fixed member metadata) rather than the webdataset
    library: tarfile gives full control of every header byte, and reading needs nothing from us
    (webdataset, Ray's read_webdataset and plain `tar` all read these shards)."""

    def __init__(self, out: Path, image_format: str, budget: ByteBudget, sample_json: dict[str, Any],
                 png_text: PngText | None = None, label: int | None = None) -> None:
        super().__init__(out, image_format, budget)
        self._json = sample_json  # fields every sample's .json carries besides its seed
        self._label = label
        self._cls = None if label is None else str(label).encode()  # WebDataset's class-index entry
        self.png_text = png_text
        self._tar: tarfile.TarFile | None = None
        self._file: _HashingFile | None = None
        self._fh: BinaryIO | None = None
        self._part = -1
        self._tmp = Path()  # the part's shard while it is written (io.temporary_path)

    def encode(self, images: np.ndarray, seeds: Sequence[int]) -> list[tuple[str, list[tuple[str, bytes]]]]:
        return [(sample_key(seed, self._label),
                 [("png", encode_image(image, "png", self.png_text(seed) if self.png_text else None)),
                  ("json", json.dumps({"seed": int(seed), **self._json}, sort_keys=True).encode()),
                  *([("cls", self._cls)] if self._cls is not None else [])])
                for image, seed in zip(images, seeds, strict=True)]

    def open_part(self, part: int, seeds: Sequence[int], first_row: int) -> None:
        self._part = part
        self._tmp = temporary_path(self.out / shard_name(part))
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 (closed in close_part/abort_part)
        self._file = _HashingFile(self._fh, self.budget, self._tmp)
        self._tar = tarfile.TarFile(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)  # type: ignore[arg-type]

    def add(self, payload: list[tuple[str, list[tuple[str, bytes]]]]) -> None:
        assert self._tar is not None
        for key, entries in payload:
            for extension, data in entries:
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                self._tar.addfile(info, io.BytesIO(data))

    def close_part(self) -> dict[str, Any]:
        assert self._tar is not None and self._fh is not None and self._file is not None
        self._tar.close()  # end-of-archive blocks, padded to tarfile's fixed record size
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.out / shard_name(self._part))
        fsync_dir(self.out)
        record = {"file": shard_name(self._part), "sha256": self._file.digest.hexdigest()}
        self._tar = self._fh = self._file = None
        self._part = -1  # complete: nothing for abort_part to remove any more
        return record

    def abort_part(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._tar = self._fh = self._file = None
        if self._part >= 0:
            self._tmp.unlink(missing_ok=True)

    def owns(self, name: str) -> bool:
        return re.fullmatch(r"shard-\d{6,}\.tar", name) is not None

    def part_sha256(self, part: dict[str, Any], seeds: Sequence[int], first_row: int) -> str:
        return file_sha256(self.out / part["file"])


class NpyWriter(PartWriter):
    """One memory-mappable uint8 array images.npy [count, H, W, C] (this shard's seeds, in order) + seeds.npy.

    The array is preallocated (header, then a sparse file of the full size) as .images.npy.partial; each
    part's rows are written in place with pwrite and fsynced before the part is recorded, so a resumed run
    rewrites only unrecorded parts. A part's checksum: sha256 of its rows' bytes."""

    def __init__(self, out: Path, image_format: str, budget: ByteBudget, shape: tuple[int, ...], count: int,
                 label: int | None = None) -> None:
        super().__init__(out, image_format, budget)
        self.shape, self.count, self.label = shape, count, label
        self.row_bytes = int(np.prod(shape))
        self._fd: int | None = None
        self._header_bytes = 0
        self._offset = 0
        self._digest = hashlib.sha256()

    @property
    def partial(self) -> Path:
        return self.out / NPY_PARTIAL

    def _header(self) -> bytes:
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False,
                                                       "shape": (self.count, *self.shape)})
        return buffer.getvalue()

    def _open(self) -> int:
        if self._fd is None:
            header = self._header()
            self._header_bytes = len(header)
            fresh = not self.partial.exists()
            self._fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o666)
            if fresh:
                self.budget.spend(len(header), self.partial)
                os.pwrite(self._fd, header, 0)
                os.ftruncate(self._fd, len(header) + self.count * self.row_bytes)
        return self._fd

    def encode(self, images: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        return images  # nothing to encode: the rows go to the array as they are

    def open_part(self, part: int, seeds: Sequence[int], first_row: int) -> None:
        self._open()
        self._offset = self._header_bytes + first_row * self.row_bytes
        self._digest = hashlib.sha256()

    def add(self, payload: np.ndarray) -> None:
        data = np.ascontiguousarray(payload).tobytes()
        self.budget.spend(len(data), self.partial)
        view = memoryview(data)
        while view:  # a short write means the disk filled up mid-call: the next call raises ENOSPC
            written = os.pwrite(self._open(), view, self._offset)
            if written == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.partial))
            view, self._offset = view[written:], self._offset + written
        self._digest.update(data)

    def close_part(self) -> dict[str, Any]:
        os.fsync(self._open())
        return {"sha256": self._digest.hexdigest()}

    def abort_part(self) -> None:
        self._close()  # the rows stay unrecorded; a resumed run rewrites them

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self, seeds: Sequence[int]) -> dict[str, str]:
        if self.partial.exists() or self.count == 0:
            self._open()
            self._close()
            os.replace(self.partial, self.out / "images.npy")
        arrays = {"seeds.npy": np.fromiter(seeds, np.int64, len(seeds))}
        if self.label is not None:
            arrays["labels.npy"] = np.full(len(seeds), self.label, np.int64)
        checksums = {}
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            data = buffer.getvalue()
            write_file(self.out / name, data, self.budget)
            checksums[name] = hashlib.sha256(data).hexdigest()
        fsync_dir(self.out)
        return checksums

    def owns(self, name: str) -> bool:
        return name in ("images.npy", "seeds.npy", "labels.npy", NPY_PARTIAL)

    def part_sha256(self, part: dict[str, Any], seeds: Sequence[int], first_row: int) -> str:
        array = np.load(self.out / "images.npy", mmap_mode="r")
        return hashlib.sha256(np.ascontiguousarray(array[first_row:first_row + len(seeds)]).tobytes()).hexdigest()


def make_writer(out: Path, image_format: str, budget: ByteBudget, shape: tuple[int, ...], count: int,
                sample_json: dict[str, Any], png_text: PngText | None = None, label: int | None = None) -> PartWriter:
    if image_format == "npy":
        return NpyWriter(out, image_format, budget, shape, count, label)
    if image_format == "tar":
        return TarWriter(out, image_format, budget, sample_json, png_text, label)
    return FilesWriter(out, image_format, budget, png_text)


def encoder_options(image_format: str) -> dict[str, Any]:
    """What the manifest records of the encoder (the tar format stores PNGs)."""
    import PIL

    if image_format == "npy":
        return {}
    return {"image": "png" if image_format == "tar" else image_format,
            "options": ENCODER_OPTIONS["png" if image_format == "tar" else image_format], "pillow": PIL.__version__}

"""Zip archives (.keras models, .npz data) read without trusting their headers.

Before any member is decompressed, `check_archive` compares what the central directory declares with
what the file can hold:
  - only stored or deflated members (zipfile bounds those reads by the declared size; bzip2/lzma
    chunks can expand without bound in one call), none encrypted;
  - a stored member's declared size equals its stored size; no member's data ends past the archive;
    the stored sizes add up to no more than the archive (overlapping members are a bomb trick);
  - at most MAX_MEMBERS members;
  - a member declaring more than MEMBER_FLOOR, or all members together more than TOTAL_FLOOR, must
    not expand more than MAX_RATIO x what is stored (Keras writes members stored, 1:1; DEFLATE of
    real data stays far below 100:1; a decompression bomb is ~1000:1).
Members are then read with a size cap (`read_member`), streamed in chunks (`verify_member`), or, for
an HDF5 member, opened in place (stored) or via an anonymous temporary file (deflated) — never read
whole into memory.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from losscheck.loading.h5_guard import size_text

MEMBER_FLOOR = 256 << 20
TOTAL_FLOOR = 512 << 20
MAX_RATIO = 100
MAX_MEMBERS = 10_000  # a model archive holds a handful; an .npz one per array
CHUNK = 1 << 20
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated", zipfile.ZIP_BZIP2: "bzip2",
            zipfile.ZIP_LZMA: "lzma"}


class ArchiveProblem(Exception):
    """What is wrong with an archive, in words (the caller names the file and says what to do)."""


def check_archive(zf: zipfile.ZipFile, archive_size: int) -> None:
    """Refuse, before decompressing a byte, an archive whose headers cannot be honest (see module doc)."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArchiveProblem(f"it holds {len(infos)} members (at most {MAX_MEMBERS} accepted)")
    stored = declared = 0
    for info in infos:
        name = info.filename
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
            raise ArchiveProblem(f"member {name!r} is compressed with {method}; only stored or deflated members "
                                 "are read")
        if info.flag_bits & 0x1:
            raise ArchiveProblem(f"member {name!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ArchiveProblem(f"member {name!r} is stored uncompressed but declares {info.file_size} bytes and "
                                 f"stores {info.compress_size} (a forged header)")
        if info.header_offset + info.compress_size > archive_size:
            raise ArchiveProblem(f"member {name!r} declares more data ({size_text(info.compress_size)}) than the "
                                 f"archive holds ({size_text(archive_size)}): truncated or forged")
        if info.file_size > MEMBER_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
            raise ArchiveProblem(_bomb(f"member {name!r}", info.file_size, info.compress_size))
        stored += info.compress_size
        declared += info.file_size
    if stored > archive_size:
        raise ArchiveProblem(f"its members declare {size_text(stored)} of stored data in a "
                             f"{size_text(archive_size)} archive (overlapping members: a decompression bomb)")
    if declared > TOTAL_FLOOR and declared > MAX_RATIO * stored:
        raise ArchiveProblem(_bomb(f"its {len(infos)} members", declared, stored))


def _bomb(what: str, declared: int, stored: int) -> str:
    return (f"{what} would unpack to {size_text(declared)} from {size_text(stored)} "
            f"({declared / max(stored, 1):.0f}:1, over the {MAX_RATIO}:1 accepted above "
            f"{size_text(MEMBER_FLOOR)}): a decompression bomb")


class ObjectArray(ArchiveProblem):
    """An .npy member holds Python objects (dtype=object): only pickle could read it."""

    def __init__(self, key: str) -> None:
        super().__init__(f"array {key!r} holds Python objects (dtype=object)")
        self.key = key


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], Any, int]:
    """(shape, dtype, header length) of an .npy member, from its header alone."""
    from numpy.lib import format as npy

    with zf.open(info) as fh:
        major, _ = npy.read_magic(fh)
        read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
        shape, _, dtype = read(fh)
        return tuple(int(d) for d in shape), dtype, fh.tell()


def npy_members_size(zf: zipfile.ZipFile, keys: set[str] | None = None) -> int:
    """Bytes the .npy members of a checked archive (an .npz) declare, from their headers alone (no
    data read); only the arrays named in `keys` when given. Refuses a member whose header declares
    more data than the member holds (truncated, or a forged shape) and object arrays (ObjectArray)."""
    total = 0
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        key = info.filename[:-4]
        if keys is not None and key not in keys:
            continue
        try:
            shape, dtype, header = _npy_header(zf, info)
        except ValueError:
            continue  # not an .npy header: np.load names what is wrong with this member
        if dtype.hasobject:
            raise ObjectArray(key)
        nbytes = math.prod(shape) * dtype.itemsize
        if header + nbytes > info.file_size:
            raise ArchiveProblem(f"array {key!r} declares shape {shape} ({size_text(nbytes)}) but its member "
                                 f"holds {size_text(max(0, info.file_size - header))} of data (truncated or forged)")
        total += nbytes
    return total


def read_member(zf: zipfile.ZipFile, name: str, cap: int) -> bytes:
    """A small member (config, metadata) whole, refusing one that declares more than `cap` bytes.
    zipfile never returns more than the declared size (a lying header fails its CRC check)."""
    info = zf.getinfo(name)
    if info.file_size > cap:
        raise ArchiveProblem(f"member {name!r} declares {size_text(info.file_size)}, more than the "
                             f"{size_text(cap)} such a member can need")
    with zf.open(info) as fh:
        return fh.read(cap + 1)


def verify_member(zf: zipfile.ZipFile, name: str, head: int = 8) -> bytes:
    """Stream a member through its CRC check in CHUNK-sized pieces; returns its first `head` bytes.
    Raises zipfile.BadZipFile (CRC) or EOFError/zlib.error on a damaged member."""
    first = b""
    with zf.open(name) as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            if len(first) < head:
                first += chunk[:head - len(first)]
    return first


class _Window(io.RawIOBase):
    """Read-only view of bytes [start, start + size) of an open binary file (a stored zip member)."""

    def __init__(self, fh: Any, start: int, size: int) -> None:
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:n]) or 0
        self._pos += got
        return got


def _data_offset(fh: Any, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts: after its local header (whose name/extra lengths may differ
    from the central directory's)."""
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


@contextlib.contextmanager
def open_member_h5(path: Path, name: str) -> Iterator[Any]:
    """An h5py.File (read-only) on an HDF5 member of a checked archive, never read whole into memory:
    a stored member is read in place; a deflated one is first streamed into an anonymous temporary
    file in the system temp dir (gone when closed, even if the process is killed)."""
    import h5py

    with open(path, "rb") as raw, zipfile.ZipFile(raw) as zf:
        info = zf.getinfo(name)
        if info.compress_type == zipfile.ZIP_STORED:
            start = _data_offset(raw, info)
            fileobj: Any = _Window(raw, start, info.file_size)
            with h5py.File(fileobj, "r") as f:
                yield f
            return
        with tempfile.TemporaryFile(prefix="losscheck-") as tmp:
            with zf.open(info) as member:
                while True:
                    chunk = member.read(CHUNK)
                    if not chunk:
                        break
                    tmp.write(chunk)
            tmp.seek(0)
            with h5py.File(tmp, "r") as f:
                yield f


def available_memory() -> int:
    """Bytes of memory this process can still get: MemAvailable, lowered by a cgroup (v2) limit."""
    avail = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            avail = 1 << 40
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            avail = min(avail, max(0, int(limit) - used))
    return int(avail)

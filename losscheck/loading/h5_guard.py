"""HDF5 files must not reach outside themselves. Before any dataset is read, the whole file is walked
without following anything (h5py's low-level API): every link must be a hard link (no soft, external
or user-defined links), and every dataset must keep its raw data in the file itself (no external
storage, no virtual dataset). A compressed dataset's chunks may hold at most CHUNK_CAP bytes (HDF5
unpacks a whole chunk to read one row of it). Optionally, a dataset that declares far more bytes than
it stores (a shape or decompression bomb) is refused too: declared > floor and declared > ratio x stored.
"""

from __future__ import annotations

import math
from typing import Any

CHUNK_CAP = 256 << 20
_LINK_KINDS = {"soft": "a soft link", "external": "an external link"}


def _name(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _link_target(handle: Any, name: str) -> str:
    """Where a soft or external link points, for the message (never resolved)."""
    import h5py

    try:
        link = handle.get(name, getlink=True)
    except Exception:  # noqa: BLE001 - only used to word the message
        return ""
    if isinstance(link, h5py.ExternalLink):
        return f" to {link.filename}:{link.path}"
    if isinstance(link, h5py.SoftLink):
        return f" to {link.path}"
    return ""


def outside_reference(handle: Any, bomb_floor: int | None = None, bomb_ratio: float = 100.0,
                      chunk_cap: int = CHUNK_CAP) -> str | None:
    """The first thing in an open h5py.File that reaches outside it (or unpacks to far more than it
    stores: compressed chunks over `chunk_cap`; with `bomb_floor`, a dataset declaring far more than it
    stores), in words naming the dataset; None when the file is self-contained."""
    from h5py import h5d, h5l, h5o

    found: list[str] = []

    def on_link(raw: bytes, info: Any) -> int | None:
        if info.type == h5l.TYPE_HARD:
            return None
        name = _name(raw)
        kind = {h5l.TYPE_SOFT: "soft", h5l.TYPE_EXTERNAL: "external"}.get(info.type)
        what = _LINK_KINDS.get(kind or "", "a user-defined link")
        found.append(f"{name!r} is {what}{_link_target(handle, name)}, which losscheck never follows")
        return 1  # stop the walk

    handle.id.links.visit(on_link, info=True)
    if found:
        return found[0]

    def on_object(raw: bytes, info: Any) -> int | None:
        if info.type != h5o.TYPE_DATASET:
            return None
        name = _name(raw)
        dset = h5d.open(handle.id, raw)
        try:
            plist = dset.get_create_plist()
            if plist.get_external_count() > 0:
                target = plist.get_external(0)[0]
                target = target.decode("utf-8", "replace") if isinstance(target, bytes) else str(target)
                found.append(f"dataset {name!r} keeps its data in an external file ({target!r}), which losscheck "
                             "never reads")
            elif plist.get_layout() == h5d.VIRTUAL:
                found.append(f"dataset {name!r} is a virtual dataset (its data lives in other datasets or files), "
                             "which losscheck never reads")
            elif plist.get_layout() == h5d.CHUNKED and plist.get_nfilters() > 0 \
                    and math.prod(plist.get_chunk()) * int(dset.dtype.itemsize) > chunk_cap:
                chunk = math.prod(plist.get_chunk()) * int(dset.dtype.itemsize)
                found.append(f"dataset {name!r} is compressed in chunks of {size_text(chunk)}, each unpacked whole to "
                             f"read a single row (at most {size_text(chunk_cap)} accepted)")
            elif bomb_floor is not None:
                declared = math.prod(int(d) for d in (dset.shape or ())) * int(dset.dtype.itemsize)
                stored = int(dset.get_storage_size())
                if declared > bomb_floor and declared > bomb_ratio * stored:
                    found.append(f"dataset {name!r} declares {size_text(declared)} but stores only "
                                 f"{size_text(stored)} (a decompression or shape bomb)")
        finally:
            dset.close()
        return 1 if found else None

    h5o.visit(handle.id, on_object, info=True)
    return found[0] if found else None


def size_text(n: float) -> str:
    """Bytes in binary units: 5368709120 -> '5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} TiB"

"""Decoded data kept on disk (the streaming cache, the tensor cache) and the memory budget."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from estimators._download import cache_dir
from estimators._images import DiskImages, ImageData, decoded_bytes

__all__ = [
    "MEMORY_SHARE",
    "available_memory",
    "disk_cached",
    "open_stream",
    "seal_stream",
    "stream_cache_dir",
]

#: ``auto`` streams when the decoded images would take more than this share of the
#: memory available (MemAvailable): the rest is for the model, its activations and the
#: other processes (a search runs several workers on one machine).
MEMORY_SHARE = 0.5
_CACHE_FORMAT = 3
_STREAM_FORMAT = "nasctl-stream/1"


def available_memory() -> int:
    """Bytes of memory available to new allocations now: MemAvailable (Linux), else
    the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 33  # unknown: assume 8 GiB


# --- the streaming cache ------------------------------------------------------------
#
# A directory per (source, resolution, modification times) under the cache:
#   images.u8    N rows of 3 x R x R uint8, row i = the i-th file (zeros if unreadable)
#   index.npz    per row: ok, labels, split (which split directory)
#   meta.json    format, count, resolution, classes, split names, skipped, identity;
#                written last, so a directory without it (a decode that was killed) is
#                not read but rebuilt.


def stream_cache_dir(key: tuple[object, ...], resolution: int) -> Path:
    digest = hashlib.sha256(repr((_STREAM_FORMAT, *key)).encode()).hexdigest()[:20]
    return cache_dir() / "stream" / f"{key[0]}-r{resolution}-{digest}"


def seal_stream(directory: Path, resolution: int, ok: np.ndarray, info: dict[str, Any]) -> None:
    """Write the index, then meta.json (the mark of a complete cache), atomically."""
    pid = os.getpid()
    index = directory / f"index.{pid}.npz"
    with index.open("wb") as fh:
        np.savez(fh, ok=ok, labels=info["labels"], split=info["split"])
    index.replace(directory / "index.npz")
    meta = {
        "format": _STREAM_FORMAT,
        "count": len(ok),
        "resolution": resolution,
        **{k: info[k] for k in ("classes", "tops", "skipped", "identity")},
    }
    tmp = directory / f"meta.{pid}.tmp"
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    tmp.replace(directory / "meta.json")


def open_stream(
    directory: Path, resolution: int
) -> tuple[DiskImages, np.ndarray, dict[str, Any]] | None:
    """The cache in ``directory`` if it is complete and consistent, else None (the
    caller rebuilds it; what it writes replaces the files here by renaming, so another
    process decoding the same data at the same time is not disturbed)."""
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        count = int(meta["count"])
        size = (directory / "images.u8").stat().st_size
        with np.load(directory / "index.npz") as index:
            ok, labels, split = index["ok"], index["labels"], index["split"]
        complete = (
            meta.get("format") == _STREAM_FORMAT
            and meta.get("resolution") == resolution
            and size == decoded_bytes(count, resolution)
            and len(ok) == len(labels) == len(split) == count
        )
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        complete = False
    if not complete:
        _clear_dead_writers(directory)
        return None
    info = {**meta, "labels": labels, "split": split}
    return DiskImages(directory / "images.u8", resolution, np.arange(count)), ok, info


def _clear_dead_writers(directory: Path) -> None:
    """Remove the partial files (``*.<pid>.part``/``.tmp``/``.npz``) of writers that are
    no longer running on this machine: what a killed decode left behind."""
    if not directory.is_dir():
        return
    for f in directory.iterdir():
        parts = f.name.split(".")
        if len(parts) == 3 and parts[1].isdigit() and not _running(int(parts[1])):
            f.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing here now: its leftovers are stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def disk_cached(key: tuple[object, ...], loader: Callable[[], ImageData]) -> ImageData:
    digest = hashlib.sha256(repr((_CACHE_FORMAT, *key)).encode()).hexdigest()[:20]
    path = cache_dir() / "tensors" / f"{key[0]}-r{key[2]}-{digest}.pt"
    if path.is_file():
        try:
            saved: dict[str, Any] = torch.load(path, weights_only=True)
            fixed: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()
            }
            return ImageData(**fixed)
        except Exception:  # a stale or torn cache file is rebuilt, not fatal
            path.unlink(missing_ok=True)
    result = loader()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({f: getattr(result, f) for f in result.__dataclass_fields__}, tmp)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs speed
    return result

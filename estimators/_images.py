"""The decoded images of a dataset: uint8 rows in memory or in a file on disk (DiskImages)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from estimators._download import DataError

__all__ = ["DiskImages", "ImageData", "Images", "decoded_bytes"]


class DiskImages:
    """uint8 images [N, 3, R, R] in a file of consecutive rows, read on demand.

    Indexing (an int, a slice, or an index tensor or array) reads just those rows into a
    new uint8 tensor, as indexing a tensor would, so the training loop cannot tell the
    two apart. Rows are read in file order (neighbours merged into one read) for
    locality; the process holds the batch it asked for, and the rest of the file stays
    in the kernel's page cache, which gives it back under memory pressure.
    """

    def __init__(self, path: Path, resolution: int, rows: np.ndarray) -> None:
        self.path = path
        self.resolution = resolution
        self.rows = np.ascontiguousarray(rows, dtype=np.int64)
        self.row_bytes = 3 * resolution * resolution
        self._fd: int | None = None

    @property
    def shape(self) -> torch.Size:
        r = self.resolution
        return torch.Size((len(self.rows), 3, r, r))

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"DiskImages({self.path.name!r}, {tuple(self.shape)})"

    def subset(self, index: torch.Tensor | np.ndarray) -> DiskImages:
        """The rows at ``index`` as another view of the same file (nothing is read)."""
        return DiskImages(self.path, self.resolution, self.rows[_as_index(index)])

    def __getitem__(self, key: int | slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(key, int):
            return self._read(self.rows[[key]])[0]
        if isinstance(key, slice):
            return self._read(self.rows[key])
        index = _as_index(key)
        if index.ndim == 0:  # a 0-d tensor or array: one image, as a tensor would give
            return self._read(self.rows[[int(index)]])[0]
        return self._read(self.rows[index])

    def _read(self, wanted: np.ndarray) -> torch.Tensor:
        r = self.resolution
        out = np.empty((len(wanted), 3, r, r), dtype=np.uint8)
        if not len(wanted):
            return torch.from_numpy(out)
        order = np.argsort(wanted, kind="stable")
        ordered = wanted[order]
        # A run: consecutive rows of the file that land at consecutive places in ``out``.
        breaks = np.flatnonzero((np.diff(ordered) != 1) | (np.diff(order) != 1)) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [len(ordered)]))
        flat = out.reshape(len(wanted), self.row_bytes)
        fd = self._open()
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            first = int(order[a])
            _read_into(fd, flat[first : first + b - a], int(ordered[a]) * self.row_bytes)
        return torch.from_numpy(out)

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except OSError as exc:
                raise DataError(f"cannot read the image cache {str(self.path)!r}: {exc}") from None
        return self._fd

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}  # a descriptor does not cross processes

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]


#: What a split's images are: a tensor in memory or rows of a file on disk.
Images = torch.Tensor | DiskImages


def _as_index(index: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    arr = index.numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
    if arr.dtype == np.bool_:
        return np.flatnonzero(arr)
    return arr.astype(np.int64, copy=False)


def _read_into(fd: int, dest: np.ndarray, offset: int) -> None:
    view = dest.data.cast("B")
    done = 0
    while done < len(view):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [view[done:]], offset + done)
        else:  # no positional reads (Windows): seek, then read
            os.lseek(fd, offset + done, os.SEEK_SET)
            chunk = os.read(fd, len(view) - done)
            view[done : done + len(chunk)] = chunk
            got = len(chunk)
        if got <= 0:
            raise DataError(f"the image cache ends early at byte {offset + done}; delete it")
        done += got


@dataclass(frozen=True)
class ImageData:
    """The splits of a dataset as uint8 NCHW images at ``resolution``.

    ``train_x``/``val_x``/``test_x`` are tensors, or :class:`DiskImages` on the
    streaming path (indexing either gives a uint8 tensor). ``test_x``/``test_y`` are
    the held-out split (None only for an ImageData built by hand); ``test_source``
    says where it came from (``test/``, ``test_batch`` or the share of train carved
    out). ``skipped`` lists files that could not be decoded (they are left out, not
    fatal). ``mean``/``std`` are per-channel statistics of the training split in
    [0, 1], used to normalise, and saved with checkpoints so evaluation normalises the
    same way. ``identity`` names the content (classes and files), not the path it was
    read from.
    """

    name: str
    classes: tuple[str, ...]
    resolution: int
    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    skipped: tuple[str, ...] = ()
    mean: tuple[float, float, float] = field(default=(0.5, 0.5, 0.5))
    std: tuple[float, float, float] = field(default=(0.25, 0.25, 0.25))
    identity: str = ""
    test_x: Images | None = None
    test_y: torch.Tensor | None = None
    test_source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def streamed(self) -> bool:
        return isinstance(self.train_x, DiskImages)

    def describe(self) -> str:
        how = ", streamed from disk" if self.streamed else ""
        test = "" if self.test_y is None else f" / {len(self.test_y):,} test"
        return (
            f"{self.name}: {len(self.train_y):,} train / {len(self.val_y):,} val{test} images, "
            f"{self.num_classes} classes, {self.resolution}x{self.resolution}{how}"
        )


def decoded_bytes(images: int, resolution: int) -> int:
    """Bytes of ``images`` decoded to uint8 RGB at ``resolution``."""
    return images * 3 * resolution * resolution

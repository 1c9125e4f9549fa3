"""Image datasets decoded once into uint8 images at the training resolution.

Sources, by what ``--data`` names: ``digits`` (scikit-learn's embedded handwritten
digits, the default: it works offline with no files), ``cifar10`` (downloaded once), a
directory of CIFAR-10 python batches, or an ImageFolder tree. Decoding JPEGs every epoch
would make a 2-core machine decode-bound, so every source is decoded once, then either

- held in memory as one uint8 tensor per split (``memory``; also cached on disk as a
  tensor file keyed by path, resolution, split seed and modification times), or
- written once, in chunks, to a uint8 file of N x 3 x R x R rows on disk and read back a
  batch at a time (``stream``: a :class:`DiskImages` stands where the tensor would), so
  a folder larger than memory trains with memory bounded by a batch.

``auto`` (the default) streams when the decoded images would take more than
``MEMORY_SHARE`` of the memory available now. Every dataset also carries an
``identity``: a digest of its class list and relative file list (with sizes), so that
the same data at another path, on another machine, is recognised as the same.

Three splits, never overlapping: ``train`` (what models learn from), ``val`` (what a
search selects on and training reports) and ``test`` (held out: only ``nasctl compare``
reports on it, so its figures come from images no selection has seen). A source's own
splits are used where it has them (``train/ val/ test/`` folders, CIFAR's
``test_batch`` as test); a missing test split is carved from train first, per class,
with the fixed seed ``TEST_SEED`` (so it is the same images whatever ``--seed`` a search
or a comparison uses), then a missing val split from what is left, with ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from estimators._download import DataError, ProgressFn, cache_dir, download_cifar10
from estimators._options import DEFAULT_DATA, DataMode

__all__ = [
    "DEFAULT_DATA",
    "IMAGE_EXTENSIONS",
    "MEMORY_SHARE",
    "TEST_SEED",
    "DataMode",
    "DiskImages",
    "ImageData",
    "Images",
    "available_memory",
    "decoded_bytes",
    "load_data",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
)
#: ``auto`` streams when the decoded images would take more than this share of the
#: memory available (MemAvailable): the rest is for the model, its activations and the
#: other processes (a search runs several workers on one machine).
MEMORY_SHARE = 0.5
#: The seed of every carved test split: fixed, not ``--seed``, so that a search and a
#: comparison run with different seeds hold out the same images.
TEST_SEED = 0
_CACHE_FORMAT = 3
_STREAM_FORMAT = "nasctl-stream/1"
_POOL_THRESHOLD = 2000  # fewer files than this decode faster without worker start-up
_WRITE_BYTES = 64 << 20  # the streaming writer holds at most this many decoded bytes
_STATS_IMAGES = 5000  # images the normalisation statistics are computed on
_MEMORY: dict[tuple[object, ...], ImageData] = {}


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


def load_data(
    data: str | Path = DEFAULT_DATA,
    resolution: int = 32,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    disk_cache: bool = True,
    on_progress: ProgressFn | None = None,
    mode: DataMode | str = DataMode.AUTO,
    memory_budget: int | None = None,
) -> ImageData:
    """Load ``data`` (``digits``, ``cifar10``, a CIFAR-10 batches dir or an ImageFolder
    dir) at ``resolution``.

    Sources without a test split hold out ``test_fraction`` of train per class with
    ``TEST_SEED``; sources without a validation split then carve ``val_fraction`` of
    the rest per class with ``seed`` (both stratified). ``mode`` picks memory or
    streaming; ``auto`` streams when the decoded images exceed ``memory_budget`` bytes
    (default: ``MEMORY_SHARE`` of the available memory). The streaming cache is always
    written (it is the data); ``disk_cache`` only concerns the in-memory path. Results
    are memoised per process.
    """
    if not isinstance(resolution, int) or resolution < 8:
        raise DataError(f"resolution must be an integer >= 8, got {resolution!r}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    try:
        mode = DataMode(mode)
    except ValueError:
        allowed = ", ".join(m.value for m in DataMode)
        raise DataError(f"data mode must be one of {allowed}, got {mode!r}") from None
    if memory_budget is not None and memory_budget < 0:
        raise DataError(f"memory_budget must be >= 0 bytes, got {memory_budget!r}")
    text = str(data)
    path = Path(text).expanduser()
    if text == "digits":
        key: tuple[object, ...] = ("digits", resolution, seed, val_fraction, test_fraction)
        images = 1797
        parts: Callable[[], _Parts] = lambda: _digits(seed, val_fraction, test_fraction)  # noqa: E731
    elif text == "cifar10" and not path.exists():
        root = download_cifar10(on_progress=on_progress)
        key = ("cifar-batches", str(root.resolve()), resolution, _mtimes([root]), seed)
        key += (val_fraction,)
        images = _cifar_count(root)
        parts = lambda: _cifar_batches(root, "cifar10", seed, val_fraction)  # noqa: E731
    elif not path.exists():
        raise DataError(f"--data {text!r} is not 'digits', 'cifar10' or an existing directory")
    elif not path.is_dir():
        raise DataError(f"--data {text!r} is a file; give a directory (ImageFolder or CIFAR)")
    elif _is_cifar_batches(path):
        key = ("cifar-batches", str(path.resolve()), resolution, _mtimes([path]), seed)
        key += (val_fraction,)
        images = _cifar_count(path)
        parts = lambda: _cifar_batches(path, path.name, seed, val_fraction)  # noqa: E731
    else:
        dirs = _folder_dirs(path)
        key = ("folder", str(path.resolve()), resolution, seed, val_fraction, _mtimes(dirs))
        key += (test_fraction,)
        images = _folder_count(dirs)
    if mode is DataMode.AUTO:
        budget = int(MEMORY_SHARE * available_memory()) if memory_budget is None else memory_budget
        mode = DataMode.STREAM if decoded_bytes(images, resolution) > budget else DataMode.MEMORY
    key = (*key, mode.value)
    if key in _MEMORY:
        return _MEMORY[key]
    loader: Callable[[], ImageData]
    if key[0] == "folder":
        stream_key = key[:3] + key[5:6]  # the split is made after decoding: not in the key
        loader = lambda: _image_folder(  # noqa: E731
            path,
            resolution,
            seed,
            (val_fraction, test_fraction),
            on_progress,
            _stream_dir(stream_key, resolution) if mode is DataMode.STREAM else None,
        )
    elif mode is DataMode.STREAM:
        loader = lambda: _spill(parts(), resolution, _stream_dir(key, resolution))  # noqa: E731
    else:
        loader = lambda: _in_memory(parts(), resolution)  # noqa: E731
    if mode is DataMode.MEMORY and disk_cache and key[0] != "digits":
        result = _disk_cached(key, loader)
    else:
        result = loader()
    if len(_MEMORY) >= 4:  # a search reloads one or two datasets; do not hoard memory
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = result
    return result


# --- sources held in memory: digits and CIFAR-10 batches ----------------------------


@dataclass(frozen=True)
class _Parts:
    """A source at its native resolution, split, before resizing."""

    name: str
    classes: tuple[str, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_source: str
    identity: str


def _in_memory(parts: _Parts, resolution: int) -> ImageData:
    return _finish(
        parts.name,
        parts.classes,
        resolution,
        resize_uint8(parts.train_x, resolution),
        parts.train_y,
        resize_uint8(parts.val_x, resolution),
        parts.val_y,
        test=(resize_uint8(parts.test_x, resolution), parts.test_y, parts.test_source),
        identity=parts.identity,
    )


def _digits(seed: int, val_fraction: float, test_fraction: float) -> _Parts:
    """scikit-learn's copy of the UCI optical handwritten digits: 1,797 real 8x8 images
    with 17 grey levels (0-16), shipped inside the package, so no network is needed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8))
    images = grey[:, None].expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    classes = tuple(str(int(c)) for c in bunch.target_names)
    train, val, test = split_rows(
        labels, torch.arange(len(labels)), len(classes), seed, val_fraction, test_fraction
    )
    return _Parts(
        "digits",
        classes,
        images[train],
        labels[train],
        images[val],
        labels[val],
        images[test],
        labels[test],
        _carved(test_fraction),
        "digits",
    )


def _is_cifar_batches(path: Path) -> bool:
    return (path / "test_batch").is_file() or any(path.glob("data_batch_*"))


def _cifar_count(path: Path) -> int:
    """Images in a CIFAR batches dir, from file sizes (3,073 bytes an image and more)."""
    files = [*path.glob("data_batch_*"), path / "test_batch"]
    return sum(f.stat().st_size // 3073 for f in files if f.is_file())


def _cifar_batches(path: Path, name: str, seed: int, val_fraction: float) -> _Parts:
    """The official python pickles: data_batch_1..5 (train, val carved from it with
    ``seed``) and test_batch (test)."""
    train_files = sorted(path.glob("data_batch_*"))
    if not train_files:
        raise DataError(f"{path} has no data_batch_* files (CIFAR-10 python batches)")
    if not (path / "test_batch").is_file():
        raise DataError(f"{path} has no test_batch file (CIFAR-10 python batches)")
    classes = tuple(f"class_{i}" for i in range(10))
    meta = path / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get("label_names")
        if isinstance(names, list) and len(names) == 10:
            classes = tuple(str(c) for c in names)
    train_x, train_y = zip(*(_cifar_batch(f) for f in train_files), strict=True)
    test_x, test_y = _cifar_batch(path / "test_batch")
    files = [(f.name, f.stat().st_size) for f in [*train_files, path / "test_batch"]]
    identity = _digest("cifar-batches", classes, files)
    all_x, all_y = torch.cat(train_x), torch.cat(train_y)
    train, val = _stratified_split(all_y, len(classes), seed, val_fraction)
    return _Parts(
        name,
        classes,
        all_x[train],
        all_y[train],
        all_x[val],
        all_y[val],
        test_x,
        test_y,
        "test_batch",
        identity,
    )


def _cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path} is not a CIFAR-10 python batch: {exc}") from None
    if len(data) != len(labels):
        raise DataError(f"{path} has {len(data)} images but {len(labels)} labels")
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


def _unpickle(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            raw = pickle.load(fh, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch (not a dict)")
    return {k.decode() if isinstance(k, bytes) else str(k): _text(v) for k, v in raw.items()}


def _text(value: object) -> object:
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


# --- ImageFolder ----------------------------------------------------------------------


def _split_dirs(root: Path) -> list[Path] | None:
    """The split directories when the tree is split: train/, then val/ and test/ where
    present (the missing one is carved from train)."""
    if not (root / "train").is_dir():
        return None
    found = [root / name for name in ("train", "val", "test") if (root / name).is_dir()]
    if len(found) == 1:
        raise DataError(f"{root} has train/ but neither val/ nor test/ beside it")
    return found


def _folder_dirs(root: Path) -> list[Path]:
    splits = _split_dirs(root)
    tops = splits or [root]
    return tops + [d for top in tops for d in sorted(top.iterdir()) if d.is_dir()]


def _folder_count(dirs: list[Path]) -> int:
    """Files in the class directories (an upper bound on the images: a cheap listing)."""
    count = 0
    for d in dirs:
        with os.scandir(d) as entries:
            count += sum(1 for e in entries if Path(e.name).suffix.lower() in IMAGE_EXTENSIONS)
    return count


def _class_files(top: Path) -> dict[str, list[Path]]:
    classes = sorted(d for d in top.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{top} has no class subdirectories (ImageFolder: <class>/<image>)")
    files = {
        d.name: sorted(
            f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        for d in classes
    }
    empty = [name for name, found in files.items() if not found]
    if empty:
        raise DataError(f"{top}: class {empty[0]!r} has no images ({len(empty)} empty in all)")
    if len(files) < 2:
        raise DataError(f"{top} has a single class ({classes[0].name!r}); need at least 2")
    return files


@dataclass(frozen=True)
class _Listing:
    """Every file of an ImageFolder tree in decoding order (train, then val, then test)."""

    classes: tuple[str, ...]
    tops: tuple[str, ...]  # the split directories ("train", "val", "test") present, or ("",)
    paths: list[Path]
    labels: np.ndarray  # int64, per file
    split: np.ndarray  # int8: index into tops, per file
    identity: str


def _list_folder(root: Path) -> _Listing:
    splits = _split_dirs(root)
    tops = splits or [root]
    per_split = [_class_files(top) for top in tops]
    for other, files in zip(tops[1:], per_split[1:], strict=True):
        if set(per_split[0]) != set(files):
            only_train = sorted(set(per_split[0]) - set(files))
            only_other = sorted(set(files) - set(per_split[0]))
            raise DataError(
                f"{root}: train/ and {other.name}/ have different classes "
                f"(only in train: {only_train or 'none'}; only in {other.name}: "
                f"{only_other or 'none'})"
            )
    classes = tuple(sorted(per_split[0]))
    paths = [f for files in per_split for c in classes for f in files[c]]
    labels = [i for files in per_split for i, c in enumerate(classes) for _ in files[c]]
    split = [s for s, files in enumerate(per_split) for c in classes for _ in files[c]]
    return _Listing(
        classes=classes,
        tops=tuple(t.name if splits else "" for t in tops),
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        split=np.asarray(split, dtype=np.int8),
        identity=folder_identity(root, classes, paths),
    )


def folder_identity(root: Path, classes: Sequence[str], paths: Iterable[Path]) -> str:
    """A digest of the class list and every file's path relative to ``root`` and size:
    the same tree copied to another place or machine has the same identity; adding,
    removing, renaming or resizing a file changes it."""
    files = ((p.relative_to(root).as_posix(), p.stat().st_size) for p in paths)
    return _digest("folder", tuple(classes), files)


def _digest(kind: str, classes: tuple[str, ...], files: Iterable[tuple[str, int]]) -> str:
    h = hashlib.sha256(f"{kind}\n{json.dumps(list(classes))}\n".encode())
    count = 0
    for name, size in files:
        h.update(f"{name}\t{size}\n".encode())
        count += 1
    return f"{kind}:{len(classes)}c:{count}f:{h.hexdigest()[:16]}"


def _image_folder(
    root: Path,
    resolution: int,
    seed: int,
    fractions: tuple[float, float],
    on_progress: ProgressFn | None,
    stream_dir: Path | None,
) -> ImageData:
    """Decode (or reopen the streaming cache of) an ImageFolder tree, then split it:
    its own train/ val/ test/ where present, the missing ones carved from train
    (``fractions``: val's and test's)."""
    images: Images
    cached = _open_stream(stream_dir, resolution) if stream_dir else None
    if cached is not None:
        images, ok, info = cached
    else:
        listing = _list_folder(root)
        if stream_dir is None:
            images, ok = _decode_all(listing.paths, resolution, on_progress, None)
        else:
            images, ok = _decode_all(listing.paths, resolution, on_progress, stream_dir)
        skipped = [
            str(p.relative_to(root)) for p, good in zip(listing.paths, ok, strict=True) if not good
        ]
        info = {
            "classes": list(listing.classes),
            "tops": list(listing.tops),
            "labels": listing.labels,
            "split": listing.split,
            "skipped": skipped,
            "identity": listing.identity,
        }
        if stream_dir is not None:
            _seal_stream(stream_dir, resolution, ok, info)
    classes = tuple(info["classes"])
    labels = torch.from_numpy(np.asarray(info["labels"], dtype=np.int64))
    split = np.asarray(info["split"])
    rows: dict[str, torch.Tensor] = {}
    for s, top in enumerate(info["tops"]):
        mine = np.flatnonzero(ok & (split == s))
        present = set(labels[mine].tolist())
        lost = [c for i, c in enumerate(classes) if i not in present]
        where = root / top if top else root
        if lost:
            raise DataError(f"{where}: every image of class {lost[0]!r} is unreadable")
        if len(mine) == 0:
            raise DataError(f"{where}: no readable images")
        rows[top or "train"] = torch.from_numpy(mine)
    val_fraction, test_fraction = fractions
    train_rows, val_rows, test_rows = split_rows(
        labels,
        rows["train"],
        len(classes),
        seed,
        val_fraction,
        test_fraction,
        val=rows.get("val"),
        test=rows.get("test"),
    )
    return _finish(
        root.name,
        classes,
        resolution,
        _take(images, train_rows),
        labels[train_rows],
        _take(images, val_rows),
        labels[val_rows],
        tuple(info["skipped"]),
        test=(
            _take(images, test_rows),
            labels[test_rows],
            "test/" if "test" in rows else _carved(test_fraction),
        ),
        identity=info["identity"],
    )


def _take(images: Images, rows: torch.Tensor) -> Images:
    return images.subset(rows) if isinstance(images, DiskImages) else images[rows]


def _decode_all(
    paths: list[Path], resolution: int, on_progress: ProgressFn | None, stream_dir: Path | None
) -> tuple[Images, np.ndarray]:
    """Decode every file to uint8 [3, R, R]; returns the images and a readable-mask.

    In memory, one array; with ``stream_dir``, rows appended to a file there in chunks
    of ``_WRITE_BYTES`` (unreadable files leave a zero row, so row i is file i).
    PIL decoding holds the GIL, so large trees use a pool of two processes (this machine
    has two cores); small ones are faster in-process.
    """
    ok = np.zeros(len(paths), dtype=bool)
    sink = _FileSink(stream_dir, resolution) if stream_dir else _ArraySink(len(paths), resolution)
    jobs = [(str(p), resolution) for p in paths]
    results: Iterable[np.ndarray | None]
    with sink:
        if len(paths) >= _POOL_THRESHOLD:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(2) as pool:
                results = pool.imap(_decode_one, jobs, chunksize=512)
                _collect(results, sink, ok, on_progress)
        else:
            _collect(map(_decode_one, jobs), sink, ok, on_progress)
    return sink.images(), ok


class _ArraySink:
    def __init__(self, count: int, resolution: int) -> None:
        self.out = np.zeros((count, 3, resolution, resolution), dtype=np.uint8)

    def __enter__(self) -> _ArraySink:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def put(self, i: int, image: np.ndarray | None) -> None:
        if image is not None:
            self.out[i] = image

    def images(self) -> Images:
        return torch.from_numpy(self.out)


class _FileSink:
    """Appends rows to ``<dir>/images.<pid>.part`` through a buffer of ``_WRITE_BYTES``;
    renamed to ``images.u8`` only when every row is written (see ``_seal_stream``)."""

    def __init__(self, directory: Path, resolution: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.resolution = resolution
        self.part = directory / f"images.{os.getpid()}.part"
        self.final = directory / "images.u8"
        rows = max(1, _WRITE_BYTES // (3 * resolution * resolution))
        self.buffer = np.zeros((rows, 3, resolution, resolution), dtype=np.uint8)
        self.filled = 0
        self.fh: Any = None

    def __enter__(self) -> _FileSink:
        self.fh = self.part.open("wb", buffering=0)  # forked decoders must not flush it
        return self

    def put(self, i: int, image: np.ndarray | None) -> None:
        self.buffer[self.filled] = 0 if image is None else image
        self.filled += 1
        if self.filled == len(self.buffer):
            self._flush()

    def _flush(self) -> None:
        self.fh.write(self.buffer[: self.filled].data)
        self.filled = 0

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self._flush()
                self.fh.flush()
                os.fsync(self.fh.fileno())
        finally:
            self.fh.close()
        if exc_type is None:
            self.part.replace(self.final)
        else:
            self.part.unlink(missing_ok=True)

    def images(self) -> Images:
        count = self.final.stat().st_size // (3 * self.resolution**2)
        return DiskImages(self.final, self.resolution, np.arange(count))


def _collect(
    results: Iterable[np.ndarray | None],
    sink: _ArraySink | _FileSink,
    ok: np.ndarray,
    on_progress: ProgressFn | None,
) -> None:
    total = len(ok)
    for i, image in enumerate(results):
        sink.put(i, image)
        ok[i] = image is not None
        if on_progress and (i % 1000 == 999 or i == total - 1):
            on_progress("decode", i + 1, total)


def _decode_one(job: tuple[str, int]) -> np.ndarray | None:
    """One file -> RGB (grey, palette and RGBA converted), shorter side resized to the
    resolution, centre-cropped; None when unreadable."""
    path, resolution = job
    try:
        with Image.open(path) as img:
            img.draft("RGB", (resolution, resolution))  # JPEG: decode at reduced scale
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    w, h = rgb.size
    if (w, h) != (resolution, resolution):
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        rgb = rgb.crop((left, top, left + resolution, top + resolution))
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


# --- the streaming cache ------------------------------------------------------------
#
# A directory per (source, resolution, modification times) under the cache:
#   images.u8    N rows of 3 x R x R uint8, row i = the i-th file (zeros if unreadable)
#   index.npz    per row: ok, labels, split (which split directory)
#   meta.json    format, count, resolution, classes, split names, skipped, identity;
#                written last, so a directory without it (a decode that was killed) is
#                not read but rebuilt.


def _stream_dir(key: tuple[object, ...], resolution: int) -> Path:
    digest = hashlib.sha256(repr((_STREAM_FORMAT, *key)).encode()).hexdigest()[:20]
    return cache_dir() / "stream" / f"{key[0]}-r{resolution}-{digest}"


def _seal_stream(directory: Path, resolution: int, ok: np.ndarray, info: dict[str, Any]) -> None:
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


def _open_stream(
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


def _spill(parts: _Parts, resolution: int, directory: Path) -> ImageData:
    """A source decoded in memory at its own resolution, resized in chunks into the
    streaming cache (train rows, then val rows, then test rows) and read back from there."""
    sizes = [len(parts.train_y), len(parts.val_y), len(parts.test_y)]
    cached = _open_stream(directory, resolution)
    if cached is None:
        labels = torch.cat([parts.train_y, parts.val_y, parts.test_y]).numpy()
        split = np.repeat(np.array([0, 1, 2], dtype=np.int8), sizes)
        ok = np.ones(len(labels), dtype=bool)
        with _FileSink(directory, resolution) as sink:
            i = 0
            for x in (parts.train_x, parts.val_x, parts.test_x):
                for start in range(0, len(x), 4096):
                    for image in resize_uint8(x[start : start + 4096], resolution).numpy():
                        sink.put(i, image)
                        i += 1
        info = {
            "classes": list(parts.classes),
            "tops": ["train", "val", "test"],
            "labels": labels,
            "split": split,
            "skipped": [],
            "identity": parts.identity,
        }
        _seal_stream(directory, resolution, ok, info)
        cached = _open_stream(directory, resolution)
        if cached is None:
            raise DataError(f"the image cache in {str(directory)!r} could not be written")
    images, _ok, info = cached
    labels_t = torch.from_numpy(np.asarray(info["labels"], dtype=np.int64))
    ends = np.cumsum(sizes)
    if len(labels_t) != ends[-1]:
        raise DataError(f"the image cache in {str(directory)!r} does not match its source")
    train, val, test = (np.arange(a, b) for a, b in zip([0, *ends[:2]], ends, strict=True))
    return _finish(
        parts.name,
        parts.classes,
        resolution,
        images.subset(train),
        labels_t[train],
        images.subset(val),
        labels_t[val],
        test=(images.subset(test), labels_t[test], parts.test_source),
        identity=parts.identity,
    )


# --- shared helpers -------------------------------------------------------------------


def resize_uint8(images: torch.Tensor, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of uint8 NCHW, in chunks to bound
    the float32 working memory."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    parts = []
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float()
        x = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
        )
        parts.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(parts)


def split_rows(
    labels: torch.Tensor,
    train: torch.Tensor,
    num_classes: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    *,
    val: torch.Tensor | None = None,
    test: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, val, test) row indices into ``labels``: ``val``/``test`` where the source
    has them, else carved from the ``train`` rows per class: test first with
    ``TEST_SEED`` (so it does not move with ``seed``), then val from the rest with
    ``seed``. The one function every command splits with, so a search's train and val
    never hold a comparison's test images."""
    if test is None:
        keep, held = _stratified_split(
            labels[train], num_classes, TEST_SEED, test_fraction, "train/val/test"
        )
        train, test = train[keep], train[held]
    if val is None:
        keep, held = _stratified_split(labels[train], num_classes, seed, val_fraction)
        train, val = train[keep], train[held]
    return train, val, test


def _carved(test_fraction: float) -> str:
    return f"{test_fraction:.0%} of train, held out"


def _stratified_split(
    labels: torch.Tensor,
    num_classes: int,
    seed: int,
    val_fraction: float,
    splits: str = "train/val",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, a seeded ``val_fraction`` (at least one image, never all) is carved
    out; returns (kept, carved) positions."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    need = splits.count("/") + 1
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < need:
            raise DataError(
                f"class {c} has {len(idx)} image(s); a {splits} split needs at least {need}"
            )
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def _channel_stats(images: Images) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation in [0, 1] over up to ``_STATS_IMAGES``
    images spread evenly, read in chunks (the same sums on both paths, in float64)."""
    pick = torch.arange(0, len(images), max(1, len(images) // _STATS_IMAGES))
    chunk = max(1, (16 << 20) // (3 * images.shape[-1] * images.shape[-2]))
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(pick), chunk):
        x = images[pick[start : start + chunk]].to(torch.float64).div_(255)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square_().sum(dim=(0, 2, 3))
    n = len(pick) * images.shape[-1] * images.shape[-2]
    mean = total / n
    var = (squares - n * mean.square()) / max(n - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _finish(
    name: str,
    classes: tuple[str, ...],
    resolution: int,
    train_x: Images,
    train_y: torch.Tensor,
    val_x: Images,
    val_y: torch.Tensor,
    skipped: tuple[str, ...] = (),
    *,
    test: tuple[Images, torch.Tensor, str],
    identity: str = "",
) -> ImageData:
    if len(classes) < 2:
        raise DataError(f"{name} has {len(classes)} class(es); need at least 2")
    if len(train_y) < 2 or len(val_y) < 1:
        raise DataError(f"{name}: too few images ({len(train_y)} train, {len(val_y)} val)")
    test_x, test_y, test_source = test
    if len(test_y) < 1:
        raise DataError(f"{name}: no test images ({test_source})")
    if int(train_y.max()) >= len(classes) or int(train_y.min()) < 0:
        raise DataError(f"{name}: labels outside 0..{len(classes) - 1}")
    mean, std = _channel_stats(train_x)
    if isinstance(train_x, torch.Tensor):
        train_x = train_x.contiguous()
    if isinstance(val_x, torch.Tensor):
        val_x = val_x.contiguous()
    if isinstance(test_x, torch.Tensor):
        test_x = test_x.contiguous()
    return ImageData(
        name=name,
        classes=classes,
        resolution=resolution,
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        skipped=skipped,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        identity=identity,
        test_x=test_x,
        test_y=test_y,
        test_source=test_source,
    )


def _mtimes(paths: Iterable[Path]) -> tuple[int, ...]:
    """Modification times of the directories whose entries define the dataset: adding or
    removing a file changes its directory's mtime, which invalidates the disk cache."""
    out = []
    for p in paths:
        out.append(p.stat().st_mtime_ns)
        out.extend(f.stat().st_mtime_ns for f in sorted(p.glob("*_batch*")))
    return tuple(out)


def _disk_cached(key: tuple[object, ...], loader: Callable[[], ImageData]) -> ImageData:
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

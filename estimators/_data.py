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

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from estimators._data_cache import (
    MEMORY_SHARE,
    available_memory,
    disk_cached,
    open_stream,
    seal_stream,
    stream_cache_dir,
)
from estimators._decode import FileSink, decode_all, resize_uint8
from estimators._download import DataError, ProgressFn, download_cifar10
from estimators._images import DiskImages, ImageData, Images, decoded_bytes
from estimators._options import DEFAULT_DATA, DataMode
from estimators._sources import (
    Parts,
    cifar_batches,
    cifar_count,
    digits,
    folder_count,
    folder_dirs,
    is_cifar_batches,
    list_folder,
    mtimes,
)
from estimators._splits import carved, split_rows

__all__ = ["load_data"]

_STATS_IMAGES = 5000  # images the normalisation statistics are computed on
_MEMORY: dict[tuple[object, ...], ImageData] = {}


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
        parts: Callable[[], Parts] = lambda: digits(seed, val_fraction, test_fraction)  # noqa: E731
    elif text == "cifar10" and not path.exists():
        root = download_cifar10(on_progress=on_progress)
        key = ("cifar-batches", str(root.resolve()), resolution, mtimes([root]), seed)
        key += (val_fraction,)
        images = cifar_count(root)
        parts = lambda: cifar_batches(root, "cifar10", seed, val_fraction)  # noqa: E731
    elif not path.exists():
        raise DataError(f"--data {text!r} is not 'digits', 'cifar10' or an existing directory")
    elif not path.is_dir():
        raise DataError(f"--data {text!r} is a file; give a directory (ImageFolder or CIFAR)")
    elif is_cifar_batches(path):
        key = ("cifar-batches", str(path.resolve()), resolution, mtimes([path]), seed)
        key += (val_fraction,)
        images = cifar_count(path)
        parts = lambda: cifar_batches(path, path.name, seed, val_fraction)  # noqa: E731
    else:
        dirs = folder_dirs(path)
        key = ("folder", str(path.resolve()), resolution, seed, val_fraction, mtimes(dirs))
        key += (test_fraction,)
        images = folder_count(dirs)
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
            stream_cache_dir(stream_key, resolution) if mode is DataMode.STREAM else None,
        )
    elif mode is DataMode.STREAM:
        loader = lambda: _spill(parts(), resolution, stream_cache_dir(key, resolution))  # noqa: E731
    else:
        loader = lambda: _in_memory(parts(), resolution)  # noqa: E731
    if mode is DataMode.MEMORY and disk_cache and key[0] != "digits":
        result = disk_cached(key, loader)
    else:
        result = loader()
    if len(_MEMORY) >= 4:  # a search reloads one or two datasets; do not hoard memory
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = result
    return result


# --- assembling the splits -----------------------------------------------------------


def _in_memory(parts: Parts, resolution: int) -> ImageData:
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


def _spill(parts: Parts, resolution: int, directory: Path) -> ImageData:
    """A source decoded in memory at its own resolution, resized in chunks into the
    streaming cache (train rows, then val rows, then test rows) and read back from there."""
    sizes = [len(parts.train_y), len(parts.val_y), len(parts.test_y)]
    cached = open_stream(directory, resolution)
    if cached is None:
        labels = torch.cat([parts.train_y, parts.val_y, parts.test_y]).numpy()
        split = np.repeat(np.array([0, 1, 2], dtype=np.int8), sizes)
        ok = np.ones(len(labels), dtype=bool)
        with FileSink(directory, resolution) as sink:
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
        seal_stream(directory, resolution, ok, info)
        cached = open_stream(directory, resolution)
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
    cached = open_stream(stream_dir, resolution) if stream_dir else None
    if cached is not None:
        images, ok, info = cached
    else:
        listing = list_folder(root)
        if stream_dir is None:
            images, ok = decode_all(listing.paths, resolution, on_progress, None)
        else:
            images, ok = decode_all(listing.paths, resolution, on_progress, stream_dir)
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
            seal_stream(stream_dir, resolution, ok, info)
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
            "test/" if "test" in rows else carved(test_fraction),
        ),
        identity=info["identity"],
    )


def _take(images: Images, rows: torch.Tensor) -> Images:
    return images.subset(rows) if isinstance(images, DiskImages) else images[rows]


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

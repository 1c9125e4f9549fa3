"""Where images come from: digits, CIFAR-10 python batches and ImageFolder trees, listed."""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from estimators._download import DataError
from estimators._identity import digest, folder_identity
from estimators._splits import carved, split_rows, stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "Listing",
    "Parts",
    "cifar_batches",
    "cifar_count",
    "digits",
    "folder_count",
    "folder_dirs",
    "is_cifar_batches",
    "list_folder",
    "mtimes",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
)


@dataclass(frozen=True)
class Parts:
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


def digits(seed: int, val_fraction: float, test_fraction: float) -> Parts:
    """scikit-learn's copy of the UCI optical handwritten digits: 1,797 real 8x8 images
    with 17 grey levels (0-16), shipped inside the package, so no network is needed."""
    levels, target = _digits_arrays()
    grey = torch.from_numpy((levels * (255.0 / 16.0)).round().astype(np.uint8))
    images = grey[:, None].expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(target)
    classes = tuple(str(c) for c in range(10))
    train, val, test = split_rows(
        labels, torch.arange(len(labels)), len(classes), seed, val_fraction, test_fraction
    )
    return Parts(
        "digits",
        classes,
        images[train],
        labels[train],
        images[val],
        labels[val],
        images[test],
        labels[test],
        carved(test_fraction),
        "digits",
    )


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as (N, 8, 8) grey levels and int64 labels, read straight from the CSV that
    ``sklearn.datasets.load_digits`` reads (64 levels and the label per row), without
    importing scikit-learn: its import costs about 2-3 s, the file 0.03 s, and every
    ``nasctl`` process that loads the default data paid it. Falls back to ``load_digits``
    where the file is not where scikit-learn keeps it."""
    found = importlib.util.find_spec("sklearn")
    for root in (found.submodule_search_locations or []) if found else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            raw = np.loadtxt(path, delimiter=",")
            return raw[:, :-1].reshape(-1, 8, 8), raw[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


def is_cifar_batches(path: Path) -> bool:
    return (path / "test_batch").is_file() or any(path.glob("data_batch_*"))


def cifar_count(path: Path) -> int:
    """Images in a CIFAR batches dir, from file sizes (3,073 bytes an image and more)."""
    files = [*path.glob("data_batch_*"), path / "test_batch"]
    return sum(f.stat().st_size // 3073 for f in files if f.is_file())


def cifar_batches(path: Path, name: str, seed: int, val_fraction: float) -> Parts:
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
    identity = digest("cifar-batches", classes, files)
    all_x, all_y = torch.cat(train_x), torch.cat(train_y)
    train, val = stratified_split(all_y, len(classes), seed, val_fraction)
    return Parts(
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


def folder_dirs(root: Path) -> list[Path]:
    splits = _split_dirs(root)
    tops = splits or [root]
    return tops + [d for top in tops for d in sorted(top.iterdir()) if d.is_dir()]


def folder_count(dirs: list[Path]) -> int:
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
class Listing:
    """Every file of an ImageFolder tree in decoding order (train, then val, then test)."""

    classes: tuple[str, ...]
    tops: tuple[str, ...]  # the split directories ("train", "val", "test") present, or ("",)
    paths: list[Path]
    labels: np.ndarray  # int64, per file
    split: np.ndarray  # int8: index into tops, per file
    identity: str


def list_folder(root: Path) -> Listing:
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
    return Listing(
        classes=classes,
        tops=tuple(t.name if splits else "" for t in tops),
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        split=np.asarray(split, dtype=np.int8),
        identity=folder_identity(root, classes, paths),
    )


def mtimes(paths: Iterable[Path]) -> tuple[int, ...]:
    """Modification times of the directories whose entries define the dataset: adding or
    removing a file changes its directory's mtime, which invalidates the disk cache."""
    out = []
    for p in paths:
        out.append(p.stat().st_mtime_ns)
        out.extend(f.stat().st_mtime_ns for f in sorted(p.glob("*_batch*")))
    return tuple(out)

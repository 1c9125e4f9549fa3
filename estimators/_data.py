"""Image datasets decoded once into uint8 tensors at the training resolution.

Sources, by what ``--data`` names: ``digits`` (scikit-learn's embedded handwritten
digits, the default: it works offline with no files), ``cifar10`` (downloaded once), a
directory of CIFAR-10 python batches, or an ImageFolder tree. Decoding JPEGs every epoch
would make a 2-core machine decode-bound, so every source ends as one uint8 tensor per
split, kept in memory and (for files) in a disk cache keyed by path, resolution, split
seed and modification times.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from estimators._download import DataError, ProgressFn, cache_dir, download_cifar10

__all__ = [
    "DEFAULT_DATA",
    "IMAGE_EXTENSIONS",
    "ImageData",
    "load_data",
]

DEFAULT_DATA = "digits"
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
)
_CACHE_FORMAT = 1
_POOL_THRESHOLD = 2000  # fewer files than this decode faster without worker start-up
_MEMORY: dict[tuple[object, ...], ImageData] = {}


@dataclass(frozen=True)
class ImageData:
    """Both splits of a dataset as uint8 NCHW tensors at ``resolution``.

    ``skipped`` lists files that could not be decoded (they are left out, not fatal).
    ``mean``/``std`` are per-channel statistics of the training split in [0, 1], used to
    normalise, and saved with checkpoints so evaluation normalises the same way.
    """

    name: str
    classes: tuple[str, ...]
    resolution: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    skipped: tuple[str, ...] = ()
    mean: tuple[float, float, float] = field(default=(0.5, 0.5, 0.5))
    std: tuple[float, float, float] = field(default=(0.25, 0.25, 0.25))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train_y):,} train / {len(self.val_y):,} val images, "
            f"{self.num_classes} classes, {self.resolution}x{self.resolution}"
        )


def load_data(
    data: str | Path = DEFAULT_DATA,
    resolution: int = 32,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    disk_cache: bool = True,
    on_progress: ProgressFn | None = None,
) -> ImageData:
    """Load ``data`` (``digits``, ``cifar10``, a CIFAR-10 batches dir or an ImageFolder
    dir) at ``resolution``.

    Sources without a validation split are split per class (stratified) with ``seed``
    and ``val_fraction``. Results are memoised in memory for the process.
    """
    if not isinstance(resolution, int) or resolution < 8:
        raise DataError(f"resolution must be an integer >= 8, got {resolution!r}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    text = str(data)
    path = Path(text).expanduser()
    if text == "digits":
        key: tuple[object, ...] = ("digits", resolution, seed, val_fraction)
        loader: Callable[[], ImageData] = lambda: _digits(resolution, seed, val_fraction)  # noqa: E731
    elif text == "cifar10" and not path.exists():
        root = download_cifar10(on_progress=on_progress)
        key = ("cifar-batches", str(root.resolve()), resolution, _mtimes([root]))
        loader = lambda: _cifar_batches(root, resolution, "cifar10")  # noqa: E731
    elif not path.exists():
        raise DataError(f"--data {text!r} is not 'digits', 'cifar10' or an existing directory")
    elif not path.is_dir():
        raise DataError(f"--data {text!r} is a file; give a directory (ImageFolder or CIFAR)")
    elif _is_cifar_batches(path):
        key = ("cifar-batches", str(path.resolve()), resolution, _mtimes([path]))
        loader = lambda: _cifar_batches(path, resolution, path.name)  # noqa: E731
    else:
        dirs = _folder_dirs(path)
        key = ("folder", str(path.resolve()), resolution, seed, val_fraction, _mtimes(dirs))
        loader = lambda: _image_folder(path, resolution, seed, val_fraction, on_progress)  # noqa: E731
    if key in _MEMORY:
        return _MEMORY[key]
    result = _disk_cached(key, loader) if disk_cache and key[0] != "digits" else loader()
    if len(_MEMORY) >= 4:  # a search reloads one or two datasets; do not hoard memory
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = result
    return result


# --- sources --------------------------------------------------------------------------


def _digits(resolution: int, seed: int, val_fraction: float) -> ImageData:
    """scikit-learn's copy of the UCI optical handwritten digits: 1,797 real 8x8 images
    with 17 grey levels (0-16), shipped inside the package, so no network is needed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8))
    images = grey[:, None].expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    classes = tuple(str(int(c)) for c in bunch.target_names)
    train, val = _stratified_split(labels, len(classes), seed, val_fraction)
    images = resize_uint8(images, resolution)
    return _finish(
        "digits", classes, resolution, images[train], labels[train], images[val], labels[val]
    )


def _is_cifar_batches(path: Path) -> bool:
    return (path / "test_batch").is_file() or any(path.glob("data_batch_*"))


def _cifar_batches(path: Path, resolution: int, name: str) -> ImageData:
    """The official python pickles: data_batch_1..5 (train) and test_batch (val)."""
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
    val_x, val_y = _cifar_batch(path / "test_batch")
    return _finish(
        name,
        classes,
        resolution,
        resize_uint8(torch.cat(train_x), resolution),
        torch.cat(train_y),
        resize_uint8(val_x, resolution),
        val_y,
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


def _split_dirs(root: Path) -> tuple[Path, Path] | None:
    """(train, val) when the tree is split; val may be named val/ or test/."""
    if not (root / "train").is_dir():
        return None
    for name in ("val", "test"):
        if (root / name).is_dir():
            return root / "train", root / name
    raise DataError(f"{root} has train/ but neither val/ nor test/ beside it")


def _folder_dirs(root: Path) -> list[Path]:
    splits = _split_dirs(root)
    tops = list(splits) if splits else [root]
    return tops + [d for top in tops for d in sorted(top.iterdir()) if d.is_dir()]


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


def _image_folder(
    root: Path,
    resolution: int,
    seed: int,
    val_fraction: float,
    on_progress: ProgressFn | None,
) -> ImageData:
    splits = _split_dirs(root)
    tops = list(splits) if splits else [root]
    per_split = [_class_files(top) for top in tops]
    if splits and set(per_split[0]) != set(per_split[1]):
        only_train = sorted(set(per_split[0]) - set(per_split[1]))
        only_val = sorted(set(per_split[1]) - set(per_split[0]))
        raise DataError(
            f"{root}: train/ and {splits[1].name}/ have different classes "
            f"(only in train: {only_train or 'none'}; only in {splits[1].name}: "
            f"{only_val or 'none'})"
        )
    classes = tuple(sorted(per_split[0]))
    paths = [[f for c in classes for f in files[c]] for files in per_split]
    labels = [[i for i, c in enumerate(classes) for _ in files[c]] for files in per_split]
    flat = [p for split in paths for p in split]
    images, ok = _decode_all(flat, resolution, on_progress)
    skipped = tuple(str(p.relative_to(root)) for p, good in zip(flat, ok, strict=True) if not good)
    tensors: list[tuple[torch.Tensor, torch.Tensor]] = []
    start = 0
    for split_paths, split_labels in zip(paths, labels, strict=True):
        end = start + len(split_paths)
        keep = torch.from_numpy(ok[start:end])
        tensors.append(
            (images[start:end][keep], torch.tensor(split_labels, dtype=torch.int64)[keep])
        )
        start = end
    for (x, y), top in zip(tensors, tops, strict=True):
        present = set(y.tolist())
        lost = [c for i, c in enumerate(classes) if i not in present]
        if lost:
            raise DataError(f"{top}: every image of class {lost[0]!r} is unreadable")
        if len(x) == 0:
            raise DataError(f"{top}: no readable images")
    if splits:
        (train_x, train_y), (val_x, val_y) = tensors
    else:
        x, y = tensors[0]
        train, val = _stratified_split(y, len(classes), seed, val_fraction)
        train_x, train_y, val_x, val_y = x[train], y[train], x[val], y[val]
    return _finish(root.name, classes, resolution, train_x, train_y, val_x, val_y, skipped)


def _decode_all(
    paths: list[Path], resolution: int, on_progress: ProgressFn | None
) -> tuple[torch.Tensor, np.ndarray]:
    """Decode every file to uint8 [3, R, R]; returns the stack and a readable-mask.

    PIL decoding holds the GIL, so large trees use a pool of two processes (this machine
    has two cores); small ones are faster in-process.
    """
    out = np.zeros((len(paths), 3, resolution, resolution), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    jobs = [(str(p), resolution) for p in paths]
    results: Iterable[np.ndarray | None]
    if len(paths) >= _POOL_THRESHOLD:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            results = pool.imap(_decode_one, jobs, chunksize=512)
            _collect(results, out, ok, on_progress)
    else:
        _collect(map(_decode_one, jobs), out, ok, on_progress)
    return torch.from_numpy(out), ok


def _collect(
    results: Iterable[np.ndarray | None],
    out: np.ndarray,
    ok: np.ndarray,
    on_progress: ProgressFn | None,
) -> None:
    total = len(out)
    for i, image in enumerate(results):
        if image is not None:
            out[i] = image
            ok[i] = True
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


def _stratified_split(
    labels: torch.Tensor, num_classes: int, seed: int, val_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, a seeded ``val_fraction`` (at least one image, never all) goes to val."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < 2:
            raise DataError(
                f"class {c} has {len(idx)} image(s); a train/val split needs at least 2"
            )
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def _finish(
    name: str,
    classes: tuple[str, ...],
    resolution: int,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    skipped: tuple[str, ...] = (),
) -> ImageData:
    if len(classes) < 2:
        raise DataError(f"{name} has {len(classes)} class(es); need at least 2")
    if len(train_y) < 2 or len(val_y) < 1:
        raise DataError(f"{name}: too few images ({len(train_y)} train, {len(val_y)} val)")
    if int(train_y.max()) >= len(classes) or int(train_y.min()) < 0:
        raise DataError(f"{name}: labels outside 0..{len(classes) - 1}")
    sample = train_x[:: max(1, len(train_x) // 5000)].float().div_(255)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return ImageData(
        name=name,
        classes=classes,
        resolution=resolution,
        train_x=train_x.contiguous(),
        train_y=train_y,
        val_x=val_x.contiguous(),
        val_y=val_y,
        skipped=skipped,
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
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

"""Fetch the official CIFAR-10 archive once into the cache, checked by its MD5."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from search_space import NasctlError

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DataError",
    "cache_dir",
    "download_cifar10",
]

#: The archive and checksum published at https://www.cs.toronto.edu/~kriz/cifar.html.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

#: (stage, done, total): ``total`` is None while unknown. The CLI draws the bar.
ProgressFn = Callable[[str, int, int | None], None]


class DataError(NasctlError):
    """A dataset is missing, empty, unreadable or inconsistent."""


def cache_dir() -> Path:
    """Where downloads and decoded tensors live: ``$NASCTL_CACHE`` or ~/.cache/nasctl."""
    return Path(os.environ.get("NASCTL_CACHE") or Path.home() / ".cache" / "nasctl")


def download_cifar10(
    root: Path | None = None,
    *,
    url: str | None = None,
    md5: str | None = None,
    on_progress: ProgressFn | None = None,
) -> Path:
    """Return the ``cifar-10-batches-py`` directory, downloading and unpacking it once.

    ``url`` and ``md5`` default to ``$NASCTL_CIFAR10_URL`` / ``$NASCTL_CIFAR10_MD5``, then
    to the official values; the overrides exist so tests can serve a small archive.
    """
    root = root or cache_dir()
    url = url or os.environ.get("NASCTL_CIFAR10_URL") or CIFAR10_URL
    md5 = md5 or os.environ.get("NASCTL_CIFAR10_MD5") or CIFAR10_MD5
    target = root / "cifar-10-batches-py"
    if (target / "test_batch").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    if not archive.is_file() or _md5(archive) != md5:
        _fetch(url, archive, on_progress)
        got = _md5(archive)
        if got != md5:
            archive.unlink()
            raise DataError(
                f"download of {url} has MD5 {got}, expected {md5}: the file is corrupt or "
                "not the CIFAR-10 archive; run again to retry"
            )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"cannot unpack {archive}: {exc}") from None
    if not (target / "test_batch").is_file():
        raise DataError(f"{archive} holds no cifar-10-batches-py/test_batch")
    return target


def _fetch(url: str, dest: Path, on_progress: ProgressFn | None) -> None:
    """Stream to a .part file, renamed only when complete, so a broken run leaves no
    half file that looks finished."""
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress("download", done, total)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download CIFAR-10 from {url}: {reason}; with no network, pass --data "
            "a directory of CIFAR-10 python batches or an ImageFolder tree"
        ) from None
    shutil.move(part, dest)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

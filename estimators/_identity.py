"""What a dataset is, apart from where it lies: a digest of its classes and files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["digest", "folder_identity"]


def folder_identity(root: Path, classes: Sequence[str], paths: Iterable[Path]) -> str:
    """A digest of the class list and every file's path relative to ``root`` and size:
    the same tree copied to another place or machine has the same identity; adding,
    removing, renaming or resizing a file changes it."""
    files = ((p.relative_to(root).as_posix(), p.stat().st_size) for p in paths)
    return digest("folder", tuple(classes), files)


def digest(kind: str, classes: tuple[str, ...], files: Iterable[tuple[str, int]]) -> str:
    h = hashlib.sha256(f"{kind}\n{json.dumps(list(classes))}\n".encode())
    count = 0
    for name, size in files:
        h.update(f"{name}\t{size}\n".encode())
        count += 1
    return f"{kind}:{len(classes)}c:{count}f:{h.hexdigest()[:16]}"

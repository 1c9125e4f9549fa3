"""What a command prints and where it writes: the two consoles, rows as a table, CSV or
JSON (``emit``), and the check that an output path can be written before work starts."""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from search_space import NasctlError

__all__ = ["OutputFormat", "check_output", "console", "emit", "err_console"]

# Tables are wide: when output is piped, do not wrap them at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def emit(
    rows: list[dict[str, Any]],
    fmt: OutputFormat,
    title: str | None = None,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Print rows as a rich table (per-column ``formats`` and header ``labels``), CSV or
    JSON (raw values, keys unchanged)."""
    if fmt is OutputFormat.json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if fmt is OutputFormat.csv:
        import pandas as pd  # lazily: seconds to import, and only CSV needs it

        print(pd.DataFrame(rows).to_csv(index=False), end="")
        return
    formats = formats or {}
    table = Table(title=title, title_justify="left")
    columns = list(rows[0]) if rows else []
    for col in columns:
        numeric = bool(rows) and isinstance(rows[0][col], int | float)
        table.add_column((labels or {}).get(col, col), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(formats.get(c, _cell)(row[c]) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_output(path: Path, flag: str, *, directory: bool) -> None:
    """Refuse an output path that cannot be written, before any work starts: a file
    where a directory goes (or the reverse), a parent that is a file, a place where no
    file can be created (/proc, a read-only mount, no permission). A file is created
    and removed in the nearest existing folder to find out, so that nothing is left."""
    shown = repr(str(path))
    if directory and path.exists() and not path.is_dir():
        raise NasctlError(f"{flag} {shown} is a file, not a directory")
    if not directory and path.is_dir():
        raise NasctlError(f"{flag} {shown} is a directory, not a file")
    folder = path if directory else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NasctlError(f"{flag} {shown} cannot be written: {str(folder)!r} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nasctl-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise NasctlError(
            f"{flag} {shown} cannot be written: no file can be created in {str(folder)!r} "
            f"({reason})"
        ) from None
    if not directory and path.exists() and not os.access(path, os.W_OK):
        raise NasctlError(f"{flag} {shown} cannot be written: permission denied")

"""Reading a text file and parsing JSON, each refusing bad input with the caller's error
and one sentence (spec files and latency tables read through them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search_space._errors import NasctlError, SpecError

__all__ = ["parse_json", "read_text"]


def read_text(
    path: Path,
    what: str,
    error: type[NasctlError] = SpecError,
    not_text: str = "is not UTF-8 text",
) -> str:
    """The UTF-8 text of the file ``path``; one that cannot be read or is not text is
    refused with ``error``, naming ``what`` it should be (``not_text``: the rest of the
    sentence for a file that is not text)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {str(path)!r} {not_text}") from None


def parse_json(
    text: str, what: str, error: type[NasctlError] = SpecError, at_line: bool = True
) -> Any:
    """``text`` as JSON; text that is not is refused with ``error``: "<what> is not valid
    JSON: <why>" (and ``at_line``, where the parser stopped)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno}" if at_line else ""
        raise error(f"{what} is not valid JSON: {exc.msg}{where}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[... nested
        raise error(f"{what} is not valid JSON: {exc}") from None

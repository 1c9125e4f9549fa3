"""Repair of a journal file whose tail a crash cut short.

Optuna's ``JournalFileBackend`` appends one JSON record per line under its lock file and
fsyncs. A process killed in the middle of that write leaves a last line without its
newline. Optuna's reader skips such a line, but the next append is glued onto it: the
glued line no longer parses, a line follows it, and from then on every read of the
journal fails (every finished trial is lost). So before a journal is opened, its torn
tail is repaired under the same lock Optuna's writers take:

* a last line that is one whole record and lacks only its newline gets the newline;
* a torn record (a line that does not parse) is moved aside to ``<journal>.torn``;
  where a whole record was glued after it (what an earlier nasctl left), that record
  is kept on its own line.

Nothing is thrown away: the removed bytes are appended to ``<journal>.torn``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file

from search_space import NasctlWarning

__all__ = ["JournalRepair", "JournalRepairWarning", "repair_journal"]


class JournalRepairWarning(NasctlWarning):
    """A journal's torn tail was repaired when it was opened."""


#: How every record of Optuna's journal begins (``json.dumps`` of a dict whose first key
#: is ``op_code``). Inside a record the quotes of a string are escaped, so a match that
#: does not start a line is where a whole record was glued onto a torn one.
_RECORD_START = b'{"op_code":'
_GLUED = re.compile(rb'[^\n]\{"op_code":')


@dataclass(frozen=True)
class JournalRepair:
    """What ``repair_journal`` did to one journal file."""

    path: Path
    #: Where the removed bytes were appended (``<journal>.torn``).
    torn_path: Path
    #: Bytes moved out of the journal into ``torn_path`` (there each torn piece ends
    #: with a newline of its own).
    moved_bytes: int
    #: Torn records removed (a whole record cut short, or the torn part of a glued line).
    torn_records: int
    #: Whole records kept that lacked their newline or were glued onto a torn one.
    kept_records: int

    def message(self) -> str:
        if self.moved_bytes:
            return (
                f"journal {str(self.path)!r} had a torn record (a write cut short, e.g. by a "
                f"crash): repaired, {self.moved_bytes} bytes moved aside to "
                f"{str(self.torn_path)!r}"
            )
        return (
            f"journal {str(self.path)!r} ended in a record without its newline (a write cut "
            "short): repaired, 0 bytes moved aside"
        )


def repair_journal(path: Path) -> JournalRepair | None:
    """Repair the torn tail of the journal at ``path``, if it has one, under Optuna's own
    journal lock (so a live writer is never cut), and say what was done (None: nothing
    needed). A warning of ``JournalRepairWarning`` carries the same news."""
    path = Path(path)
    if not path.exists() or _plan(path.read_bytes()) is None:
        return None  # the common case: no lock taken
    with get_lock_file(JournalFileSymlinkLock(str(path))):
        data = path.read_bytes()  # again: a writer may have finished its line meanwhile
        plan = _plan(data)
        if plan is None:
            return None
        new, moved, removed, torn, kept = plan
        torn_path = path.with_name(path.name + ".torn")
        if moved:
            with torn_path.open("ab") as fh:
                fh.write(moved)
                fh.flush()
                os.fsync(fh.fileno())
        _replace(path, new)
    repair = JournalRepair(path, torn_path, removed, torn, kept)
    warnings.warn(JournalRepairWarning(repair.message()), stacklevel=2)
    return repair


def _plan(data: bytes) -> tuple[bytes, bytes, int, int, int] | None:
    """The repaired journal, what to append to the .torn file (each torn piece on a line
    of its own), the count of bytes removed from the journal, and the counts of torn and
    kept records; None when ``data`` needs no repair."""
    starts = {m.start() + 1 for m in _GLUED.finditer(data)}
    last = data.rfind(b"\n", 0, len(data) - 1) + 1  # where the last line begins
    if data and (not data.endswith(b"\n") or not _is_record(data[last:])):
        starts.add(last)
    if not data or not starts:
        return None
    out, moved = bytearray(), bytearray()
    torn = kept = removed = 0
    pos = 0
    for start in sorted({data.rfind(b"\n", 0, s) + 1 for s in starts}):  # line starts
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        line = data[start:end]
        if _is_record(line):  # whole: only its newline was missing
            out += data[pos:end] + (b"" if line.endswith(b"\n") else b"\n")
            kept += not line.endswith(b"\n")
            pos = end
            continue
        out += data[pos:start]
        cut = _glued_record(line)
        if cut is None:
            removed += len(line)
            moved += line if line.endswith(b"\n") else line + b"\n"
        else:
            removed += cut
            moved += line[:cut] + b"\n"
            record = line[cut:]
            out += record if record.endswith(b"\n") else record + b"\n"
            kept += 1
        torn += 1
        pos = end
    out += data[pos:]
    if bytes(out) == data:
        return None
    return bytes(out), bytes(moved), removed, torn, kept


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError, or UnicodeDecodeError where a character was cut
        return False


def _glued_record(line: bytes) -> int | None:
    """Where, in a line that does not parse, the whole record glued after a torn one
    begins (the earliest such start whose rest parses); None if there is none."""
    at = line.find(_RECORD_START, 1)
    while at > 0:
        if _is_record(line[at:]):
            return at
        at = line.find(_RECORD_START, at + 1)
    return None


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a crash leaves the old file or the new)."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".repair", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

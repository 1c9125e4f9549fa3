"""A per-device latency lookup table: the table, its file, and predicting from it.

A network's latency is predicted as the sum of its parts (stem, blocks, head), each keyed
by what decides its cost: kind, input size and channels, kernel, stride, expanded and
output channels, SE width, activation (the additive tables of OFA, ProxylessNAS and
FBNet). Times are **microseconds**. The table is a portable JSON file that records how
and where it was measured (backend, device, threads, library versions, the space), so a
table built on one machine can drive a search on another.

Drift: on a shared machine absolute latency moves by tens of percent within minutes (see
docs/latency.md), uniformly enough that ratios survive. So a fixed reference block
(``REFERENCE_PART``) is timed in every round of every batch; each entry stores its ratio to
it, and the table's ``reference_us`` (the median of the reference over the whole build)
turns a sum of ratios back into microseconds. Validation measures architectures against
the same reference.

Building a table is in ``_lut_build``, validating it in ``_lut_validate``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from estimators._latency import LatencyConfig
from search_space import (
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    NasctlError,
    Part,
    SearchSpace,
    StemSpec,
    load_space,
)
from search_space._files import parse_json, read_text

__all__ = [
    "LUT_FORMAT",
    "Correction",
    "LatencyTable",
    "LutError",
    "TableEntry",
    "load_table",
    "part_key",
    "predict",
    "save_table",
    "table_space",
]


LUT_FORMAT = "nasctl-lut/1"

#: The drift reference: a MobileNetV2-like block (32 -> 128 -> 32 channels, 3x3, stride
#: 1, ReLU) on a 16x16 map, timed in every round of a build and of a validation.
REFERENCE_PART = Part(
    "reference",
    16,
    16,
    32,
    BlockSpec(BlockKind.INVERTED_RESIDUAL, 32, 32, 3, 1, 128, 0, Activation.RELU),
)

#: Progress callback: (parts done, parts in total).
Progress = Callable[[int, int], None]


class LutError(NasctlError):
    """A table that cannot be read, resumed or used for an architecture."""


@lru_cache(maxsize=65536)
def part_key(part: Part, num_classes: int) -> str:
    """The table key of a part: everything that decides its cost, nothing else (not its
    position in the network, not dropout). ``r`` is the input size, ``i`` the input
    channels."""
    s = part.spec
    if isinstance(s, StemSpec):
        return f"stem_r{part.in_size}_k{s.kernel}_s{s.stride}_c{s.out_channels}_{s.act.value}"
    if isinstance(s, BlockSpec):
        return (
            f"{s.kind.value}_r{part.in_size}_i{part.in_channels}_k{s.kernel}_s{s.stride}"
            f"_m{s.mid_channels}_c{s.out_channels}_se{s.se_channels}_{s.act.value}"
        )
    if isinstance(s, HeadSpec):
        key = f"head_r{part.in_size}_i{part.in_channels}"
        if s.conv_channels:
            key += f"_c{s.conv_channels}{'' if s.conv_bn else '_nbn'}_{s.conv_act.value}"
        if s.hidden_features:
            key += f"_h{s.hidden_features}_{s.hidden_act.value}"
        return f"{key}_n{num_classes}"
    raise LutError(f"part.spec must be a stem, block or head, got {type(s).__name__}")


@dataclass(frozen=True)
class TableEntry:
    """One part's timing (microseconds) and its ratio to the reference block (median over
    rounds of part / reference, both timed in the same round)."""

    key: str
    ratio: float
    median_us: float
    p10_us: float
    p90_us: float
    iqr_us: float
    count: int


@dataclass(frozen=True)
class Correction:
    """measured_us = slope * sum_of_parts_us + intercept_us, fitted on ``n`` archs.

    ``method`` "scale": slope = median of measured / sum, no intercept (robust to a few
    noisy points); "line": least squares. Validation keeps the one with the lower
    leave-one-out MAPE."""

    slope: float
    intercept_us: float
    n: int
    method: str = "line"

    def apply(self, raw_us: float) -> float:
        return self.slope * raw_us + self.intercept_us


@dataclass
class LatencyTable:
    """A lookup table and how it was made. ``expected`` is the number of distinct parts
    of the space; the table is complete when every one has an entry."""

    space_name: str
    space_text: str
    resolutions: tuple[int, ...]
    num_classes: int
    config: LatencyConfig
    host: dict[str, str]
    created: str
    expected: int
    entries: dict[str, TableEntry] = field(default_factory=dict)
    correction: Correction | None = None
    reference_batches_us: list[float] = field(default_factory=list)

    _reference_cache: tuple[int, float] = field(default=(0, 0.0), repr=False, compare=False)

    @property
    def reference_us(self) -> float:
        """The reference block's typical latency: median over the build's batches."""
        n = len(self.reference_batches_us)
        if not n:
            raise LutError("the table has no reference timing (it holds no entries yet)")
        if self._reference_cache[0] != n:  # cached: predict() reads it on every call
            self._reference_cache = (n, float(np.median(self.reference_batches_us)))
        return self._reference_cache[1]

    @property
    def complete(self) -> bool:
        return len(self.entries) >= self.expected

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LUT_FORMAT,
            "unit": "us",
            "space": {
                "name": self.space_name,
                "resolutions": list(self.resolutions),
                "num_classes": self.num_classes,
                "toml": self.space_text,
            },
            "protocol": self.config.to_dict(),
            "host": self.host,
            "created": self.created,
            "expected": self.expected,
            "complete": self.complete,
            "correction": dataclasses.asdict(self.correction) if self.correction else None,
            "reference": {
                "key": part_key(REFERENCE_PART, self.num_classes),
                "median_us": self.reference_us if self.reference_batches_us else None,
                "batches_us": self.reference_batches_us,
            },
            "entries": {
                k: {f: v for f, v in dataclasses.asdict(e).items() if f != "key"}
                for k, e in sorted(self.entries.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "table") -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != LUT_FORMAT:
            raise LutError(f"{where} is not a nasctl latency table (format {LUT_FORMAT!r})")
        try:
            space = data["space"]
            corr = data.get("correction")
            return cls(
                space_name=str(space["name"]),
                space_text=str(space["toml"]),
                resolutions=tuple(int(r) for r in space["resolutions"]),
                num_classes=int(space["num_classes"]),
                config=LatencyConfig.recorded(data["protocol"]),
                host={str(k): str(v) for k, v in data["host"].items()},
                created=str(data["created"]),
                expected=int(data["expected"]),
                entries={k: _entry(k, e) for k, e in data["entries"].items()},
                correction=Correction(**corr) if corr else None,
                reference_batches_us=[_number(v) for v in data["reference"]["batches_us"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LutError(f"{where} is malformed ({type(exc).__name__}: {exc})") from None


def _number(value: Any) -> float:
    """A timing read from a table file: a finite number (not a string, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"timings must be finite numbers, got {value!r}")
    return float(value)


def _entry(key: str, fields: dict[str, Any]) -> TableEntry:
    entry = TableEntry(key=str(key), **fields)
    for name in ("ratio", "median_us", "p10_us", "p90_us", "iqr_us"):
        _number(getattr(entry, name))
    return entry


def save_table(table: LatencyTable, path: str | Path) -> None:
    """Write atomically (temp file + rename): an interrupted write never leaves half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(table.to_dict(), fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_table(path: str | Path) -> LatencyTable:
    """Read a table written by ``save_table``. Anything else (an empty file, random
    bytes, other JSON) is refused with a LutError that names the file."""
    path = Path(path)
    text = read_text(path, "table", LutError, "is not valid JSON: not UTF-8 text")
    if not text.strip():
        raise LutError(f"table {str(path)!r} is not valid JSON: the file is empty")
    where = f"table {str(path)!r}"
    return LatencyTable.from_dict(parse_json(text, where, LutError, at_line=False), where)


# --- space --------------------------------------------------------------------------------


def _space_from_text(text: str) -> SearchSpace:
    fd, tmp = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return load_space(tmp)
    finally:
        os.unlink(tmp)


def _with_resolutions(space: SearchSpace, resolutions: Sequence[int] | None) -> SearchSpace:
    if not resolutions:
        return space
    for r in resolutions:
        if isinstance(r, bool) or not isinstance(r, int) or r <= 0 or r % 8:
            raise LutError(f"resolution must be a positive multiple of 8, got {r!r}")
        if r < space.total_stride:
            raise LutError(
                f"resolution must be at least the space's total stride ({space.total_stride}), "
                f"got {r}"
            )
    return dataclasses.replace(space, resolutions=tuple(dict.fromkeys(resolutions)))


def table_space(table: LatencyTable) -> SearchSpace:
    """The space a table was built for (from the TOML it stores), at its resolutions."""
    return _with_resolutions(_space_from_text(table.space_text), table.resolutions)


# --- predict ------------------------------------------------------------------------------


def predict(spec: ArchSpec, table: LatencyTable, corrected: bool = True) -> float:
    """The latency of ``spec`` in microseconds: the sum of its parts' ratios to the
    reference block times the reference's latency, through the table's linear correction
    when it has one (and ``corrected``)."""
    if spec.num_classes != table.num_classes:
        raise LutError(
            f"num_classes of the architecture ({spec.num_classes}) must equal the table's "
            f"({table.num_classes})"
        )
    total = 0.0
    entries = table.entries
    for part in spec.parts():
        key = part_key(part, spec.num_classes)
        entry = entries.get(key)
        if entry is None:
            raise LutError(
                f"the latency table has no entry for {part.name} ({key}); build a table for "
                "a space that contains it"
            )
        total += entry.ratio
    total *= table.reference_us
    if corrected and table.correction is not None:
        return table.correction.apply(total)
    return total

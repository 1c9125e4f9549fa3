"""A per-device latency lookup table: every distinct part of a space timed once.

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

``validate_table`` measures random architectures end to end and fits a linear correction
(measured = slope * sum + intercept) that absorbs what a sum of separately timed parts
misses (per-call overhead, caches); the correction is judged by leave-one-out, so the
"after" figures are not fitted to the points they score.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from estimators._counting import count
from estimators._latency import (
    LatencyConfig,
    host_info,
    measure_many,
    part_target,
)
from search_space import (
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    NasctlError,
    Part,
    SearchSpace,
    SpecError,
    StemSpec,
    baseline_names,
    default_space_text,
    format_arch,
    get_baseline,
    load_space,
)

__all__ = [
    "LUT_FORMAT",
    "Correction",
    "LatencyTable",
    "LutError",
    "TableEntry",
    "ValidationReport",
    "build_table",
    "load_table",
    "part_key",
    "predict",
    "save_table",
    "table_space",
    "validate_table",
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LutError(f"cannot read table {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LutError(f"table {str(path)!r} is not valid JSON: not UTF-8 text") from None
    if not text.strip():
        raise LutError(f"table {str(path)!r} is not valid JSON: the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LutError(f"table {str(path)!r} is not valid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[... nested
        raise LutError(f"table {str(path)!r} is not valid JSON: {exc}") from None
    return LatencyTable.from_dict(data, f"table {str(path)!r}")


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


# --- build --------------------------------------------------------------------------------


def build_table(
    out: str | Path,
    space_path: str | Path | None = None,
    config: LatencyConfig | None = None,
    num_classes: int = 10,
    resolutions: Sequence[int] | None = None,
    progress: Progress | None = None,
    batch: int = 8,
    lock_timeout: float | None = None,
    baselines: bool = True,
) -> LatencyTable:
    """Time every distinct part of the space and write the table to ``out``.

    With ``baselines``, the parts of the four MobileNet baselines at width 1.0 and the
    table's resolutions are timed too (a few dozen more), so that a search with this table
    draws the baselines from the same table as its candidates.

    Parts are timed ``batch`` at a time in interleaved rounds, and the file is rewritten
    atomically after each batch; when ``out`` already holds a table of the same space,
    protocol and machine, its entries are kept and only the missing parts are timed
    (an interrupted build resumes)."""
    config = config or LatencyConfig()
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise LutError(f"num_classes must be a positive integer, got {num_classes!r}")
    if batch < 1:
        raise LutError(f"batch must be a positive integer, got {batch}")
    if space_path is None:
        text = default_space_text()
    else:
        try:
            text = Path(space_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""  # load_space below reports the reason
    space = _with_resolutions(load_space(space_path), resolutions)
    parts: dict[str, Part] = {}
    for p in space.distinct_parts(num_classes):
        parts.setdefault(part_key(p, num_classes), p)
    if baselines:
        for name in baseline_names():
            for res in space.resolutions:
                try:
                    spec = get_baseline(name, 1.0, res, num_classes)
                except SpecError:  # a resolution below the baseline's total stride
                    continue
                for p in spec.parts():
                    parts.setdefault(part_key(p, num_classes), p)
    table = LatencyTable(
        space_name=space.name,
        space_text=text,
        resolutions=tuple(space.resolutions),
        num_classes=num_classes,
        config=config,
        host=host_info(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        expected=len(parts),
    )
    out = Path(out)
    if out.exists():
        old = load_table(out)
        _check_resumable(old, table, out)
        table.entries = {k: e for k, e in old.entries.items() if k in parts}
        table.reference_batches_us = old.reference_batches_us
        table.created = old.created
    todo = [k for k in parts if k not in table.entries]
    done = len(parts) - len(todo)
    if progress:
        progress(done, len(parts))
    save_table(table, out)
    reference = part_target(REFERENCE_PART, num_classes, config.seed)
    for start in range(0, len(todo), batch):
        keys = todo[start : start + batch]
        targets = [part_target(parts[k], num_classes, config.seed) for k in keys]
        results = measure_many(
            targets, config, reference=reference, names=keys, lock_timeout=lock_timeout
        )
        for k, r in zip(keys, results, strict=True):
            table.entries[k] = TableEntry(
                k, r.ratio_to_reference or 0.0, r.median_us, r.p10_us, r.p90_us, r.iqr_us, r.count
            )
        table.reference_batches_us.append(results[0].reference_median_us or 0.0)
        save_table(table, out)
        done += len(keys)
        if progress:
            progress(done, len(parts))
    return table


def _check_resumable(old: LatencyTable, new: LatencyTable, path: Path) -> None:
    checks = [
        ("space", old.space_text, new.space_text),
        ("resolutions", old.resolutions, new.resolutions),
        ("num_classes", old.num_classes, new.num_classes),
        ("protocol", old.config, new.config),
        ("host cpu", old.host.get("cpu"), new.host.get("cpu")),
        ("torch version", old.host.get("torch"), new.host.get("torch")),
    ]
    for name, a, b in checks:
        if a != b:
            raise LutError(
                f"{str(path)!r} holds a table with another {name}; it cannot be resumed "
                "(delete it or choose another --out)"
            )


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


# --- validate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationReport:
    """Predicted vs measured end-to-end latency of ``n`` random architectures.

    "raw" is the plain sum of parts; "corrected" the linear correction: shares, MAPE and
    bias by leave-one-out (each point predicted by a line fitted without it), ranks by the
    line fitted on all points. ``existing`` scores the correction the table already had
    (None without one); a held-out figure when it was fitted with another seed. ``rows``
    hold arch, macs, raw_us, corrected_us (the leave-one-out prediction), measured_us
    (median of the passes) and measured_passes_us. Times in microseconds.

    ``repeatability`` (None with one pass) scores the first pass against the median of the
    others with the same figures: the ceiling that measurement noise puts on any predictor
    judged against one measurement.

    "Measured" is drift-cancelled: each architecture's ratio to the reference block (timed
    in the same rounds) times the table's ``reference_us``. ``absolute`` scores the
    table (existing correction, else the new line) against plain medians instead, which
    carry the machine's drift; ``measured_abs_us`` in the rows."""

    n: int
    seed: int
    passes: int
    repeatability: dict[str, float] | None
    raw: dict[str, float]
    corrected: dict[str, float]
    existing: dict[str, float] | None
    absolute: dict[str, float]
    macs_spearman: float
    macs_kendall: float
    correction: Correction
    stored: bool
    predict_s_per_arch: float
    measure_s_per_arch: float
    rows: list[dict[str, Any]]

    @property
    def speedup(self) -> float:
        return self.measure_s_per_arch / self.predict_s_per_arch

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["speedup"] = self.speedup
        return out


def accuracy(predicted: ArrayLike, measured: ArrayLike) -> dict[str, float]:
    """Share within +-5% / +-10%, MAPE (%), mean signed error (%), Spearman, Kendall."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = p / m - 1.0
    return {
        "within_5": float(np.mean(np.abs(rel) <= 0.05)),
        "within_10": float(np.mean(np.abs(rel) <= 0.10)),
        "mape_pct": float(np.mean(np.abs(rel)) * 100),
        "bias_pct": float(np.mean(rel) * 100),
        "spearman": float(stats.spearmanr(p, m).statistic) if len(p) > 1 else float("nan"),
        "kendall": float(stats.kendalltau(p, m).statistic) if len(p) > 1 else float("nan"),
    }


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line y = slope * x + intercept (slope 1 when x does not vary)."""
    var = float(np.var(x))
    if var <= 1e-12 * max(float(np.mean(x)) ** 2, 1.0):
        return 1.0, float(np.mean(y - x))
    slope = float(np.mean((x - x.mean()) * (y - y.mean())) / var)
    return slope, float(y.mean() - slope * x.mean())


def _fit_scale(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y = slope * x with slope the median ratio (robust to outliers)."""
    return float(np.median(y / x)), 0.0


_FITS = {"scale": _fit_scale, "line": _fit}


def _leave_one_out(
    x: np.ndarray, y: np.ndarray, fit: Callable[[np.ndarray, np.ndarray], tuple[float, float]]
) -> np.ndarray:
    out = np.empty_like(y)
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        slope, intercept = fit(x[keep], y[keep])
        out[i] = slope * x[i] + intercept
    return out


def validate_table(
    table: LatencyTable,
    n: int = 50,
    seed: int = 10_000,
    config: LatencyConfig | None = None,
    progress: Progress | None = None,
    chunk: int = 10,
    lock_timeout: float | None = None,
    passes: int = 2,
) -> ValidationReport:
    """Measure ``n`` random architectures of the table's space end to end (same protocol
    as the table unless ``config``), compare with the table, and fit a correction.

    Every architecture is measured in ``passes`` separate passes over all of them; its
    measured latency is the median of its passes, and ``repeatability`` scores the first
    pass against the median of the others exactly as the table is scored: the agreement a
    perfect predictor could show against one measurement on this machine.

    Architectures come from ``space.random_spec(seed + i)``; the table never saw them.
    ``stored`` tells whether the correction beat the raw sum (leave-one-out MAPE) and was
    set on ``table`` (the caller saves it); otherwise the table keeps what it had."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise LutError(f"n must be an integer >= 3 (a line needs points to be judged), got {n!r}")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise LutError(f"passes must be an integer >= 1, got {passes!r}")
    config = config or table.config
    space = table_space(table)
    specs = [space.random_spec(seed + i, table.num_classes) for i in range(n)]
    raw = np.array([predict(s, table, corrected=False) for s in specs])  # raises if missing
    previous = table.correction

    t0 = time.perf_counter()
    reps = 0
    while time.perf_counter() - t0 < 0.2:
        for s in specs:
            predict(s, table, corrected=False)
        reps += 1
    predict_s = (time.perf_counter() - t0) / (reps * n)

    by_pass: list[list[float]] = []
    abs_by_pass: list[list[float]] = []
    reference = part_target(REFERENCE_PART, table.num_classes, config.seed)
    t0 = time.perf_counter()
    if progress:
        progress(0, n * passes)
    for _ in range(passes):
        measured: list[float] = []
        absolute: list[float] = []
        for start in range(0, n, chunk):
            group = specs[start : start + chunk]
            results = measure_many(group, config, reference=reference, lock_timeout=lock_timeout)
            measured += [(r.ratio_to_reference or 0.0) * table.reference_us for r in results]
            absolute += [r.median_us for r in results]
            if progress:
                progress(sum(map(len, by_pass)) + len(measured), n * passes)
        by_pass.append(measured)
        abs_by_pass.append(absolute)
    measure_s = (time.perf_counter() - t0) / (n * passes)

    passes_arr = np.asarray(by_pass)
    y = np.median(passes_arr, axis=0)
    absolute = list(np.median(np.asarray(abs_by_pass), axis=0))
    repeatability = (
        accuracy(np.median(passes_arr[1:], axis=0), passes_arr[0]) if passes > 1 else None
    )
    loos = {name: _leave_one_out(raw, y, fit) for name, fit in _FITS.items()}
    method = min(loos, key=lambda name: accuracy(loos[name], y)["mape_pct"])
    loo = loos[method]
    slope, intercept = _FITS[method](raw, y)
    before, after = accuracy(raw, y), accuracy(loo, y)
    # Ranks are those of the one stored line (a positive slope keeps the raw order);
    # leave-one-out lines differ by point and would only add noise to a rank figure.
    full = accuracy(slope * raw + intercept, y)
    after["spearman"], after["kendall"] = full["spearman"], full["kendall"]
    correction = Correction(slope, intercept, n, method)
    stored = after["mape_pct"] < before["mape_pct"] and slope > 0
    if stored:
        table.correction = correction
    macs = [count(s).macs for s in specs]
    return ValidationReport(
        n=n,
        seed=seed,
        passes=passes,
        repeatability=repeatability,
        raw=before,
        corrected=after,
        existing=accuracy([previous.apply(r) for r in raw], y) if previous else None,
        absolute=accuracy(
            [previous.apply(r) for r in raw] if previous else slope * raw + intercept, absolute
        ),
        macs_spearman=float(stats.spearmanr(macs, y).statistic),
        macs_kendall=float(stats.kendalltau(macs, y).statistic),
        correction=correction,
        stored=stored,
        predict_s_per_arch=predict_s,
        measure_s_per_arch=measure_s,
        rows=[
            {
                "arch": format_arch(s),
                "macs": m,
                "raw_us": float(r),
                "corrected_us": float(c),
                "measured_us": float(v),
                "measured_abs_us": float(a),
                "measured_passes_us": [float(v) for v in passes_arr[:, i]],
            }
            for i, (s, m, r, c, v, a) in enumerate(
                zip(specs, macs, raw, loo, y, absolute, strict=True)
            )
        ],
    )

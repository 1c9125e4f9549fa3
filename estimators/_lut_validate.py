"""Validating a latency table: measure random architectures end to end, score the
table's predictions and fit a linear correction.

``validate_table`` measures random architectures end to end and fits a linear correction
(measured = slope * sum + intercept) that absorbs what a sum of separately timed parts
misses (per-call overhead, caches); the correction is judged by leave-one-out, so the
"after" figures are not fitted to the points they score.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from estimators._counting import count
from estimators._latency import LatencyConfig, measure_many, part_target
from estimators._lut import (
    REFERENCE_PART,
    Correction,
    LatencyTable,
    LutError,
    Progress,
    predict,
    table_space,
)
from search_space import format_arch

__all__ = ["ValidationReport", "accuracy", "validate_table"]


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


def rank_correlations(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Spearman's and Kendall's rank correlations (NaN under two points). scipy.stats is
    imported here, not with the module: a second of import that only validation needs."""
    from scipy import stats

    if len(np.asarray(x)) < 2:
        return float("nan"), float("nan")
    return float(stats.spearmanr(x, y).statistic), float(stats.kendalltau(x, y).statistic)


def accuracy(predicted: ArrayLike, measured: ArrayLike) -> dict[str, float]:
    """Share within +-5% / +-10%, MAPE (%), mean signed error (%), Spearman, Kendall."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = p / m - 1.0
    spearman, kendall = rank_correlations(p, m)
    return {
        "within_5": float(np.mean(np.abs(rel) <= 0.05)),
        "within_10": float(np.mean(np.abs(rel) <= 0.10)),
        "mape_pct": float(np.mean(np.abs(rel)) * 100),
        "bias_pct": float(np.mean(rel) * 100),
        "spearman": spearman,
        "kendall": kendall,
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
    macs_spearman, macs_kendall = rank_correlations(macs, y)
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
        macs_spearman=macs_spearman,
        macs_kendall=macs_kendall,
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

"""Predicted vs measured latency from `nasctl lut validate --format json` outputs, one panel
per run, with the +-10% band, and a summary of the runs (median and range).

    nasctl lut validate --lut LUT --n 50 --passes 3 --seed S --no-store --format json \
        > bench/results/lut_validate_passes3_sS.json          # for each seed S
    python bench/lut_validate_plot.py bench/results/lut_validate_passes3_s*.json \
        --out bench/results/lut_validate_passes3.png

Measured = the median of the passes, drift-cancelled (ratio to the reference block timed in
the same rounds, times the table's reference time); predicted = the table's sum of parts
with the leave-one-out linear correction, as the report scores it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def predicted_vs_measured(ax: Any, rows: list[dict], fitted: str, fitted_label: str) -> None:
    """One panel: the raw sum of parts and the fitted prediction (``rows[i][fitted]``, us)
    against the measured latency, in ms, with the identity line and its +-10% band."""
    meas = np.array([r["measured_us"] for r in rows]) / 1000
    raw = np.array([r["raw_us"] for r in rows]) / 1000
    fit = np.array([r[fitted] for r in rows]) / 1000
    every = np.concatenate([meas, raw, fit])
    lo, hi = 0.9 * every.min(), 1.1 * every.max()
    line = np.linspace(lo, hi, 50)
    ax.fill_between(line, 0.9 * line, 1.1 * line, color="tab:green", alpha=0.15, label="+-10%")
    ax.plot(line, line, color="tab:green", lw=1)
    ax.scatter(meas, raw, s=12, color="tab:gray", alpha=0.6, label="sum of parts (raw)")
    ax.scatter(meas, fit, s=16, color="tab:blue", label=fitted_label)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    runs = [json.loads(p.read_text()) for p in args.reports]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 4.8), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        predicted_vs_measured(ax, run["rows"], "corrected_us", "corrected (leave-one-out)")
        ax.set_xlabel(f"measured latency (ms, median of {run['passes']} passes)")
        c = run["corrected"]
        ax.set_title(
            f"seed {run['seed']}, {run['n']} archs: {c['within_10']:.0%} within 10%,\n"
            f"Spearman {c['spearman']:.3f} (one pass vs the others: "
            f"{run['repeatability']['spearman']:.2f})",
            fontsize=9,
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)

    for key in ("within_10", "spearman", "mape_pct"):
        values = [run["corrected"][key] for run in runs]
        print(
            f"corrected {key}: median {np.median(values):.3f}, "
            f"range {min(values):.3f}-{max(values):.3f}"
        )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

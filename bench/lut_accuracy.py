"""Lookup table vs measurement on held-out random architectures of the default space.

1. builds (or resumes) the table of every distinct part of the space (torch eager,
   BatchNorm folded, 1 thread, batch 1, 10 classes, the space's resolutions 32/40/48);
2. calibrates the linear correction on ``--calibrate`` random architectures (seeds from
   20000);
3. measures ``--n`` other random architectures (seeds from 10000) end to end and scores
   the raw sum of parts and the calibrated table on them: share within +-5/10%, MAPE,
   Spearman, Kendall, MACs' rank correlation, prediction vs measurement time;
4. plots predicted vs measured with the +-10% band.

    flock /tmp/nasctl-heavy.lock python bench/lut_accuracy.py

Writes bench/results/lut_<backend>_t<threads>.json (the table), lut_accuracy.json and
lut_accuracy.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from lut_validate_plot import predicted_vs_measured  # run as a script: bench/ is on the path

from estimators import LatencyConfig, build_table, save_table, validate_table

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--calibrate", type=int, default=20)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--num-classes", type=int, default=10)
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    config = LatencyConfig(backend=args.backend, threads=args.threads)
    lut = RESULTS / f"lut_{args.backend}_t{args.threads}.json"
    loads = {"start": os.getloadavg()}

    t0 = time.perf_counter()
    last = [0.0]

    def tick(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 15 or done == total:
            last[0] = time.perf_counter()
            print(f"  parts {done}/{total}  {time.perf_counter() - t0:.0f} s", flush=True)

    table = build_table(lut, None, config, num_classes=args.num_classes, progress=tick)
    build_s = time.perf_counter() - t0
    loads["after_build"] = os.getloadavg()
    print(f"table: {len(table.entries)} parts in {build_s:.0f} s (this run) -> {lut}")

    table.correction = None
    calib = validate_table(table, args.calibrate, seed=20_000)
    table.correction = calib.correction  # fitted on the calibration archs only
    save_table(table, lut)
    loads["after_calibration"] = os.getloadavg()
    print(f"calibration on {args.calibrate}: {calib.correction}")

    held = validate_table(table, args.n, seed=10_000)
    table.correction = calib.correction  # keep the calibration line, not a refit
    save_table(table, lut)
    loads["end"] = os.getloadavg()
    assert held.existing is not None
    result = {
        "space": "default (search_space/spaces/default.toml)",
        "num_classes": args.num_classes,
        "protocol": config.to_dict(),
        "host": table.host,
        "parts": len(table.entries),
        "build_s_this_run": build_s,
        "calibration": {"n": args.calibrate, "seed": 20_000, **calib.correction.__dict__},
        "held_out": {
            "n": args.n,
            "seed": 10_000,
            "raw_sum_of_parts": held.raw,
            "calibrated_table": held.existing,
            "loo_refit_on_held_out": held.corrected,
            "macs_spearman": held.macs_spearman,
            "macs_kendall": held.macs_kendall,
            "predict_s_per_arch": held.predict_s_per_arch,
            "measure_s_per_arch": held.measure_s_per_arch,
            "speedup": held.speedup,
        },
        "loadavg": loads,
        "rows": [
            {**row, "calibrated_us": calib.correction.apply(row["raw_us"])} for row in held.rows
        ],
    }
    (RESULTS / "lut_accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
    _plot(result)
    for name in ("raw_sum_of_parts", "calibrated_table"):
        m = result["held_out"][name]  # type: ignore[index]
        print(
            f"{name}: within 5% {m['within_5']:.0%}, within 10% {m['within_10']:.0%}, "
            f"MAPE {m['mape_pct']:.2f}%, bias {m['bias_pct']:+.2f}%, "
            f"Spearman {m['spearman']:.3f}, Kendall {m['kendall']:.3f}"
        )
    print(
        f"MACs Spearman {held.macs_spearman:.3f}; predict {held.predict_s_per_arch * 1e6:.1f} us "
        f"vs measure {held.measure_s_per_arch:.2f} s per arch ({held.speedup:,.0f}x); loads {loads}"
    )


def _plot(result: dict) -> None:
    m = result["held_out"]["calibrated_table"]
    fig, ax = plt.subplots(figsize=(6, 6))
    predicted_vs_measured(ax, result["rows"], "calibrated_us", "calibrated table")
    p = result["protocol"]
    ax.set_title(
        f"{result['held_out']['n']} held-out archs, {p['backend']} {p['threads']} thread, batch 1\n"
        f"calibrated: {m['within_10']:.0%} within 10%, Spearman {m['spearman']:.3f}",
        fontsize=10,
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(RESULTS / "lut_accuracy.png", dpi=110)


if __name__ == "__main__":
    main()

"""Repeatability of the latency protocol: is the median of five measurements of
MobileNetV2 stable within +-5%?

Takes ``groups`` groups of five full measurements (each: warm-up until steady, 5 rounds x
20 timed calls, 1 thread, batch 1), a few seconds apart, with MobileNetV3-Small timed as a
reference in every round. Reports every measurement, each group's median of five, and the
largest deviation of a group median from the median of all groups, for the absolute
median and for the ratio to the reference.

    flock /tmp/nasctl-heavy.lock python bench/latency_repeatability.py [--resolution 224]

Writes bench/results/latency_repeatability_<backend>_r<res>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from estimators import LatencyConfig, host_info, measure_many
from search_space import get_baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--pause", type=float, default=5.0, help="Seconds between measurements.")
    args = ap.parse_args()

    v2 = get_baseline("mobilenet_v2", 1.0, args.resolution, args.num_classes)
    ref = get_baseline("mobilenet_v3_small", 1.0, args.resolution, args.num_classes)
    config = LatencyConfig(backend=args.backend, threads=args.threads)
    load_before = os.getloadavg()
    runs = []
    for g in range(args.groups):
        for i in range(5):
            (r,) = measure_many([v2], config, reference=ref, names=["mobilenet_v2"])
            runs.append({"group": g, "run": i, **r.to_dict()})
            print(
                f"group {g} run {i}: median {r.median_us / 1000:.3f} ms  "
                f"IQR/median {r.iqr_ratio:.1%}  x ref {r.ratio_to_reference:.3f}",
                flush=True,
            )
            time.sleep(args.pause)
    load_after = os.getloadavg()

    def summary(key: str) -> dict[str, object]:
        values = np.array([run[key] for run in runs])
        groups = np.array([np.median(values[g * 5 : g * 5 + 5]) for g in range(args.groups)])
        center = float(np.median(groups))
        return {
            "single_runs_max_dev_pct": float(np.max(np.abs(values / np.median(values) - 1)) * 100),
            "group_medians": groups.tolist(),
            "group_median_max_dev_pct": float(np.max(np.abs(groups / center - 1)) * 100),
            "group_median_range_pct": float((groups.max() - groups.min()) / center * 100),
            "within_5pct": bool(np.all(np.abs(groups / center - 1) <= 0.05)),
        }

    result = {
        "what": "MobileNetV2 1.0, median of five measurements, repeated in groups",
        "resolution": args.resolution,
        "num_classes": args.num_classes,
        "reference": "mobilenet_v3_small 1.0",
        "protocol": config.to_dict(),
        "host": host_info(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "median_us": summary("median_us"),
        "ratio_to_reference": summary("ratio_to_reference"),
        "runs": runs,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"latency_repeatability_{args.backend}_r{args.resolution}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    for key in ("median_us", "ratio_to_reference"):
        s = result[key]
        print(
            f"{key}: group medians {s['group_medians']}, max deviation "  # type: ignore[index]
            f"{s['group_median_max_dev_pct']:.2f}%, single runs up to "  # type: ignore[index]
            f"{s['single_runs_max_dev_pct']:.2f}%"  # type: ignore[index]
        )
    print(f"loadavg before {load_before}, after {load_after} -> {path}")


if __name__ == "__main__":
    main()

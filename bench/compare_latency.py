"""Re-measure the models of a `nasctl compare` CSV several times: which is faster, and how
often?

One `nasctl compare` run measures every model once (interleaved rounds, MobileNetV2 as
the reference). On this shared machine two such runs can order close models differently,
so this script repeats the whole interleaved measurement ``--repeats`` times, a few
seconds apart, and reports for every model the median and range of its per-run median
and of its ratio to the reference, and for every candidate how many runs found it faster
than each baseline.

    flock /tmp/nasctl-heavy.lock python bench/compare_latency.py \
        bench/results/compare_cifar10_fast.csv --repeats 5 --rounds 10

Writes bench/results/<csv stem>_latency.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from estimators import LatencyConfig, host_info, measure_many
from search_space import get_baseline, parse_arch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, help="The compare CSV (columns name, baseline, arch).")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pause", type=float, default=5.0, help="Seconds between measurements.")
    args = ap.parse_args()

    rows = list(csv.DictReader(args.csv.open()))
    names = [r["name"] for r in rows]
    specs = [parse_arch(r["arch"]) for r in rows]
    baseline = {r["name"]: r["baseline"] == "True" for r in rows}
    ref_res = next(
        parse_arch(r["arch"]).resolution for r in rows if r["name"].startswith("mobilenet_v2")
    )
    ref = get_baseline("mobilenet_v2", 1.0, ref_res, specs[0].num_classes)
    config = LatencyConfig(threads=args.threads, rounds=args.rounds)

    load_before = os.getloadavg()
    runs: list[dict[str, dict[str, float]]] = []
    for i in range(args.repeats):
        results = measure_many(specs, config, reference=ref, names=names)
        runs.append(
            {r.name: {"median_us": r.median_us, "ratio": r.ratio_to_reference} for r in results}
        )
        order = sorted(runs[-1], key=lambda n: runs[-1][n]["ratio"])
        print(
            f"run {i}: "
            + ", ".join(f"{n} {runs[-1][n]['median_us'] / 1000:.2f} ms" for n in order),
            flush=True,
        )
        time.sleep(args.pause)
    load_after = os.getloadavg()

    models = {}
    for n in names:
        med = np.array([run[n]["median_us"] for run in runs])
        ratio = np.array([run[n]["ratio"] for run in runs])
        models[n] = {
            "baseline": baseline[n],
            "median_us": float(np.median(med)),
            "median_us_min": float(med.min()),
            "median_us_max": float(med.max()),
            "ratio_to_v2": float(np.median(ratio)),
            "ratio_to_v2_min": float(ratio.min()),
            "ratio_to_v2_max": float(ratio.max()),
        }
    faster = {
        c: {b: sum(run[c]["ratio"] < run[b]["ratio"] for run in runs) for b in names if baseline[b]}
        for c in names
        if not baseline[c]
    }
    result = {
        "what": f"latency of the models of {args.csv.name}, {args.repeats} interleaved runs",
        "reference": f"mobilenet_v2 1.0 r{ref_res}",
        "protocol": config.to_dict(),
        "host": host_info(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "models": models,
        "runs_faster_than": faster,
        "runs": runs,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{args.csv.stem}_latency.json"
    path.write_text(json.dumps(result, indent=1) + "\n")

    print(f"\n{'model':28} {'median ms':>10} {'range ms':>14} {'x V2':>6} {'range':>13}")
    for n in sorted(models, key=lambda n: models[n]["ratio_to_v2"]):
        m = models[n]
        print(
            f"{n:28} {m['median_us'] / 1000:10.2f} "
            f"{m['median_us_min'] / 1000:6.2f}-{m['median_us_max'] / 1000:<7.2f} "
            f"{m['ratio_to_v2']:6.3f} {m['ratio_to_v2_min']:.3f}-{m['ratio_to_v2_max']:.3f}"
        )
    for c, against in faster.items():
        counts = ", ".join(f"{b} {k}/{args.repeats}" for b, k in against.items())
        print(f"{c} faster than: {counts}")
    print(f"loadavg before {load_before}, after {load_after} -> {path}")


if __name__ == "__main__":
    main()

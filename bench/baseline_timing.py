"""How a search times its four baselines: once each, or together against MobileNetV2
(issue 21: a search once measured V3-Small slower than V3-Large).

Two protocols, each repeated ``--repeats`` times, alternating, at one resolution:

* ``one_each``: what the search did before, ``measure(spec, SEARCH_LATENCY)`` for each
  baseline in turn (3 rounds x 10 calls, no reference);
* ``together``: what it does now, ``measure_many`` of the four in
  ``BASELINE_LATENCY``'s interleaved rounds with MobileNetV2 timed in every round.

For each it reports every repeat's medians, how often V3-Small came out slower than
V3-Large (it is the faster one: 2.5x fewer MACs), and each baseline's spread over the
repeats (max / min of its median), in ms and as the ratio to MobileNetV2 where there is
one. The figures hold for the machine and the load they were measured under (recorded)::

    python -m bench.baseline_timing --resolution 48 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from estimators import host_info, measure, measure_many
from results._search_config import BASELINE_LATENCY, BASELINE_REFERENCE, SEARCH_LATENCY
from search_space import baseline_names, get_baseline

OUT = Path(__file__).parent / "results" / "baseline_timing.json"


def one_each(specs: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {n: {"ms": measure(s, SEARCH_LATENCY).median_us / 1000} for n, s in specs.items()}


def together(specs: dict[str, Any], reference: Any) -> dict[str, dict[str, float]]:
    timed = measure_many(list(specs.values()), BASELINE_LATENCY, reference, names=list(specs))
    return {
        r.name: {"ms": r.median_us / 1000, "x_v2": float(r.ratio_to_reference or 0.0)}
        for r in timed
    }


def summary(runs: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "v3_small_slower_than_v3_large": sum(
            r["mobilenet_v3_small"]["ms"] > r["mobilenet_v3_large"]["ms"] for r in runs
        ),
        "runs": runs,
        "spread_max_over_min": {},
    }
    for name in runs[0]:
        for key in runs[0][name]:
            values = [r[name][key] for r in runs]
            out["spread_max_over_min"][f"{name}:{key}"] = max(values) / min(values)
    if "x_v2" in runs[0]["mobilenet_v3_small"]:
        out["v3_small_slower_by_x_v2"] = sum(
            r["mobilenet_v3_small"]["x_v2"] > r["mobilenet_v3_large"]["x_v2"] for r in runs
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=48)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    specs = {n: get_baseline(n, 1.0, args.resolution, args.num_classes) for n in baseline_names()}
    reference = get_baseline(BASELINE_REFERENCE, 1.0, args.resolution, args.num_classes)
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"one_each": [], "together": []}
    started = time.time()
    for _ in range(args.repeats):
        runs["one_each"].append(one_each(specs))
        runs["together"].append(together(specs, reference))
    report = {
        "resolution": args.resolution,
        "repeats": args.repeats,
        "protocols": {
            "one_each": {"config": SEARCH_LATENCY.to_dict(), **summary(runs["one_each"])},
            "together": {
                "config": BASELINE_LATENCY.to_dict(),
                "reference": BASELINE_REFERENCE,
                **summary(runs["together"]),
            },
        },
        "seconds": time.time() - started,
        "load_average": os.getloadavg(),
        "host": host_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, p in report["protocols"].items():
        worst = max(p["spread_max_over_min"].items(), key=lambda kv: kv[1])
        print(
            f"{name}: V3-Small slower than V3-Large in {p['v3_small_slower_than_v3_large']}/"
            f"{args.repeats} (by x V2: {p.get('v3_small_slower_by_x_v2', '-')}); widest "
            f"spread {worst[0]} {worst[1]:.2f}x"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

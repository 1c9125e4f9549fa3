"""Archs per second: the analytic counter vs fvcore tracing, on the same architectures.

    python bench/counter_speed.py [--n 100] [--out bench/results/counter_speed.json]

fvcore needs the module built and traced; the analytic counter reads the spec. Both are
timed on the same N random archs of the default space (plus the four baselines), in
interleaved rounds; the ratio of medians is reported with the spread of per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from estimators import count, fvcore_macs
from search_space import baseline_names, build_model, get_baseline, load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="random architectures")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="bench/results/counter_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    space = load_space()
    rng = np.random.default_rng(0)
    specs = [space.spec_from_params(space.random_params(rng), 10) for _ in range(args.n)]
    specs += [get_baseline(n, 1.0, 224, 1000) for n in baseline_names()]

    analytic_rates, fvcore_rates, ratios = [], [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(20):  # the analytic counter is too fast to time once
            counts = [count(s).macs for s in specs]
        analytic = (time.perf_counter() - t0) / 20
        t0 = time.perf_counter()
        traced = [fvcore_macs(build_model(s, seed=None), s.resolution) for s in specs]
        traced_time = time.perf_counter() - t0
        if traced != counts:
            raise SystemExit("fvcore and the analytic counter disagree")
        analytic_rates.append(len(specs) / analytic)
        fvcore_rates.append(len(specs) / traced_time)
        ratios.append(traced_time / analytic)
        print(
            f"round {r}: analytic {analytic_rates[-1]:,.0f} archs/s, fvcore (build + trace) "
            f"{fvcore_rates[-1]:.2f} archs/s, ratio {ratios[-1]:,.0f}x"
        )

    result = {
        "archs": len(specs),
        "rounds": args.rounds,
        "analytic_archs_per_s_median": statistics.median(analytic_rates),
        "fvcore_archs_per_s_median": statistics.median(fvcore_rates),
        "speedup_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "agree": True,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

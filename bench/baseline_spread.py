"""How much a baseline's accuracy in the default search moves between runs.

`nasctl search --target latency` (no other option) trains each baseline once, on the
embedded digits data, at the space's largest resolution (48 px) with the search preset at
`--images 6000` (whole epochs of digits' training split). This trains MobileNetV2 that way
several times: the same seed twice (is one run reproducible?) and other seeds (how much
does the figure a newcomer sees move?). Writes JSON and prints a table.

    python -m bench.baseline_spread --seeds 0 0 1 2 3 4 --out bench/results/baseline_spread.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from estimators import get_recipe, load_data, train_and_evaluate
from results._halving import fidelity_recipe
from search_space import get_baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="mobilenet_v2")
    parser.add_argument("--resolution", type=int, default=48)
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/baseline_spread.json"))
    args = parser.parse_args()

    data = load_data("digits", args.resolution)
    spec = get_baseline(args.baseline, 1.0, args.resolution, data.num_classes)
    base = fidelity_recipe(get_recipe("search"), args.images, len(data.train_y))
    runs = []
    for seed in args.seeds:
        started = time.monotonic()
        result = train_and_evaluate(spec, data, base.replace(seed=seed), threads=args.threads)
        runs.append(
            {
                "seed": seed,
                "val_top1": result.top1,
                "wall_seconds": round(time.monotonic() - started, 1),
            }
        )
        print(f"seed {seed}: val top-1 {result.top1:.4f} ({runs[-1]['wall_seconds']} s)")
    accs = [r["val_top1"] for r in runs]
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], []).append(r["val_top1"])
    report = {
        "bench": "baseline_spread",
        "baseline": args.baseline,
        "resolution": args.resolution,
        "data": "digits",
        "val_images": len(data.val_y),
        "recipe": base.to_dict(),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "runs": runs,
        "same_seed_identical": all(len(set(v)) == 1 for v in by_seed.values() if len(v) > 1),
        "summary": {
            "median": statistics.median(accs),
            "min": min(accs),
            "max": max(accs),
            "stdev": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        },
        "command": "python -m bench.baseline_spread "
        + " ".join(["--seeds", *map(str, args.seeds), "--threads", str(args.threads)]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    s = report["summary"]
    print(
        f"{args.baseline} at {args.resolution} px over {len(runs)} runs: median "
        f"{s['median']:.4f}, range {s['min']:.4f}-{s['max']:.4f}, stdev {s['stdev']:.4f}; "
        f"same seed identical: {report['same_seed_identical']}"
    )


if __name__ == "__main__":
    main()

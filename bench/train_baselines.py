"""Train the four baselines (width 1.0, 32x32) with the ``full`` preset and record top-1,
top-5, params, MACs and wall time in bench/results/train_baselines.json.

    mkdir -p CIFAR_DIR && tar xzf cifar10-jpg.tar.gz -C CIFAR_DIR
    flock /tmp/nasctl-heavy.lock python bench/train_baselines.py --data CIFAR_DIR

Results are written after each baseline, so an interrupted run keeps what it finished;
running the same command again skips the baselines already in the file (same data,
resolution and recipe; otherwise the file is started afresh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from estimators import PRESETS, count, load_data, train_and_evaluate
from search_space import baseline_names, get_baseline

OUT = Path(__file__).parent / "results" / "train_baselines.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 ImageFolder or batches dir")
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, default=None, help="override the preset")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", nargs="*", default=baseline_names())
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    recipe = PRESETS[args.preset].replace(seed=args.seed)
    if args.epochs:
        recipe = recipe.replace(epochs=args.epochs)
    started = time.perf_counter()
    data = load_data(args.data, args.resolution)
    load_seconds = time.perf_counter() - started
    print(f"{data.describe()} (loaded in {load_seconds:.1f} s)", flush=True)
    report = {
        "bench": "train_baselines",
        "data": data.name,
        "train_images": len(data.train_y),
        "val_images": len(data.val_y),
        "resolution": args.resolution,
        "preset": args.preset,
        "recipe": recipe.to_dict(),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} cores visible",
        "data_load_seconds": round(load_seconds, 1),
        "results": [],
    }
    if args.out.exists():
        old = json.loads(args.out.read_text())
        same = ("data", "train_images", "resolution", "recipe")
        if all(old.get(k) == report[k] for k in same):
            report["results"] = old["results"]
    done = {r["baseline"] for r in report["results"]}
    for name in args.baselines:
        if name in done:
            print(f"{name}: already in {args.out.name}, skipped", flush=True)
            continue
        spec = get_baseline(name, 1.0, args.resolution, data.num_classes)
        cost = count(spec)
        t0 = time.perf_counter()

        def progress(p, name=name):
            if p.val_top1 is None and p.batch % 100 == 0:
                print(f"{name} epoch {p.epoch + 1} batch {p.batch}/{p.batches}", flush=True)
            if p.val_top1 is not None:
                print(
                    f"{name} epoch {p.epoch + 1}/{p.epochs}: loss {p.loss:.3f} train "
                    f"{p.accuracy:.3f} val {p.val_top1:.4f} ({p.images_per_second:.0f} img/s)",
                    flush=True,
                )

        result = train_and_evaluate(spec, data, recipe, threads=args.threads, on_progress=progress)
        wall = time.perf_counter() - t0
        row = {
            "baseline": name,
            "width": 1.0,
            "params": cost.params,
            "macs": cost.macs,
            "top1": round(result.top1, 4),
            "top5": round(result.top5, 4),
            "val_loss": round(result.loss, 4),
            "epochs": result.epochs,
            "train_seconds": round(result.train_seconds, 1),
            "wall_seconds": round(wall, 1),
            "images_per_second": round(result.images_per_second, 1),
            "loadavg_end": os.getloadavg(),
            "history": result.history,
        }
        report["results"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Training from the streaming path (decoded images in a file, read per batch) against
the in-memory path, on an ImageFolder tree (CIFAR-10), and the peak memory of each.
Writes bench/results/stream_throughput.json and prints a table.

    flock /tmp/nasctl-heavy.lock python bench/stream_throughput.py --data CIFAR_DIR

CIFAR_DIR is the ImageFolder tree (train/, test/) unpacked from the CIFAR-10 JPEG
tarball. The cache is a fresh temporary directory, removed at the end, so both paths
decode from the JPEGs (``load_seconds``); with ``$NASCTL_CACHE`` set, that cache is used
and kept (``fresh_cache`` false: the load times are then mostly cache reads). One torch
thread by default: on a 2-core machine shared with other jobs, two threads spin-wait on
each other and the step time says more about the neighbours than about the data path.

Throughput: the same architecture, from the same seed, trains ``--batches`` batches with
``estimators.fit`` (one epoch over a ``train_images`` subset; validation on
``--val-images`` images spread evenly over the split), alternately from the memory and
the streaming path (A,B then B,A in the next repeat, so drift on this shared machine
falls on both), after one untimed run of each. A path's speed in a repeat is the median
of fit's own per-step rates (the ``images_per_second`` of its progress reports: batch
gather, augmentation and step, as fit times them), so a step stretched by another tenant
of this shared machine does not decide it; the mean rate (``TrainState.images / train_seconds``) and
the wall time of the whole ``fit`` call (with its evaluation) are reported beside it.
The ratio stream/memory of each repeat is taken; its median is the figure (goal >= 0.90).

Memory: one subprocess per path loads the tree at ``--rss-resolution`` and trains
``--rss-batches`` batches; its peak resident set (``ru_maxrss``) is reported, with the
decoding pool's. The streaming child uses ``mode=auto`` with ``--budget-mb`` set below
the decoded size, so the automatic rule is what picks streaming. A third child streams a
tree of ``--control-images`` images of the same data (links to the first files of each
class): if streaming holds memory bounded, its peak is about the large tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).parent / "results" / "stream_throughput.json"


def _imports():  # after NASCTL_CACHE is set
    from estimators import Recipe, fit, load_data, new_state
    from search_space import get_baseline

    return Recipe, fit, load_data, new_state, get_baseline


def _val_subset(data, count: int):
    """The same ``count`` validation images on either path, spread evenly over the split
    (a folder's validation images come sorted by class: the first 1,000 of CIFAR-10's are
    all airplanes, which gave a top-1 of 0.0 on both paths)."""
    total = len(data.val_y)
    keep = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64))
    rows = torch.from_numpy(keep)
    val_x = data.val_x.subset(keep) if data.streamed else data.val_x[rows]
    return replace(data, val_x=val_x, val_y=data.val_y[rows])


def train_once(data, args: argparse.Namespace, batches: int | None = None) -> dict[str, float]:
    Recipe, fit, _load, new_state, get_baseline = _imports()
    spec = get_baseline(args.arch, args.width, data.resolution, data.num_classes)
    recipe = Recipe(
        epochs=1,
        batch_size=args.batch_size,
        train_images=(batches or args.batches) * args.batch_size,
        warmup_epochs=0.1,
        bn_images=0,
        seed=0,
    )
    state = new_state(spec, data, recipe)
    steps: list[float] = []  # fit's own per-step rates (its progress reports)
    started = time.perf_counter()
    fit(state, data, on_progress=lambda p: steps.append(p.images_per_second))
    wall = time.perf_counter() - started
    return {
        "images_per_second": statistics.median(steps[: batches or args.batches]),
        "images_per_second_mean": state.images / state.train_seconds,
        "train_seconds": state.train_seconds,
        "fit_wall_seconds": wall,
        "images": state.images,
        "val_top1": state.history[-1]["val_top1"],
    }


def throughput(args: argparse.Namespace, fresh: bool) -> dict[str, object]:
    _r, _f, load_data, _n, _g = _imports()
    loaded = {}
    decode = {}
    for mode in ("memory", "stream"):
        started = time.perf_counter()
        data = load_data(args.data, args.resolution, mode=mode)
        decode[mode] = time.perf_counter() - started
        assert data.streamed == (mode == "stream")
        loaded[mode] = _val_subset(data, args.val_images)
    for mode in ("memory", "stream"):  # not timed: oneDNN picks kernels on first calls
        train_once(loaded[mode], args, batches=4)
    runs: dict[str, list[dict[str, float]]] = {"memory": [], "stream": []}
    ratios: list[float] = []
    mean_ratios: list[float] = []
    for repeat in range(args.repeats):
        order = ("memory", "stream") if repeat % 2 == 0 else ("stream", "memory")
        this = {}
        for mode in order:
            this[mode] = train_once(loaded[mode], args)
            runs[mode].append(this[mode])
            print(
                f"repeat {repeat + 1}/{args.repeats} {mode:6s} "
                f"{this[mode]['images_per_second']:7.1f} img/s "
                f"(fit {this[mode]['fit_wall_seconds']:.1f} s)",
                flush=True,
            )
        ratios.append(this["stream"]["images_per_second"] / this["memory"]["images_per_second"])
        mean_ratios.append(
            this["stream"]["images_per_second_mean"] / this["memory"]["images_per_second_mean"]
        )
    same = {
        runs["memory"][i]["val_top1"] == runs["stream"][i]["val_top1"] for i in range(len(ratios))
    }
    return {
        "load_seconds": decode,
        "fresh_cache": fresh,
        "images": len(loaded["memory"].train_y) + len(loaded["memory"].val_y),
        "runs": runs,
        "summary": {
            mode: {
                "images_per_second_median": statistics.median(
                    r["images_per_second"] for r in runs[mode]
                ),
                "images_per_second_min": min(r["images_per_second"] for r in runs[mode]),
                "images_per_second_max": max(r["images_per_second"] for r in runs[mode]),
                "fit_wall_seconds_median": statistics.median(
                    r["fit_wall_seconds"] for r in runs[mode]
                ),
            }
            for mode in runs
        },
        "ratio_per_repeat": ratios,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_of_means_per_repeat": mean_ratios,
        "ratio_of_means_median": statistics.median(mean_ratios),
        "same_val_top1_on_both_paths": same == {True},
    }


def rss_child(args: argparse.Namespace) -> None:
    """Runs in a subprocess: load at --rss-resolution, train, print peak RSS as JSON."""
    torch.set_num_threads(args.threads)
    _r, _f, load_data, _n, _g = _imports()
    from estimators import _images

    budget = args.budget_mb << 20
    started = time.perf_counter()
    data = load_data(args.data, args.rss_resolution, mode=args.rss_child, memory_budget=budget)
    loaded_s = time.perf_counter() - started
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    args.batches = args.rss_batches
    result = train_once(_val_subset(data, args.val_images), args)
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    pool = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    images = len(data.train_y) + len(data.val_y)
    print(
        json.dumps(
            {
                "mode_asked": args.rss_child,
                "images": images,
                "streamed": data.streamed,
                "budget_mib": args.budget_mb,
                "decoded_mib": _images.decoded_bytes(images, args.rss_resolution) / 2**20,
                "resolution": args.rss_resolution,
                "load_seconds": loaded_s,
                "peak_rss_after_load_mib": after_load / 1024,
                "peak_rss_mib": kib / 1024,
                "decode_pool_peak_rss_mib": pool / 1024,
                "images_per_second": result["images_per_second"],
                "batches": args.rss_batches,
            }
        )
    )


def rss(args: argparse.Namespace, mode: str, data: Path | None = None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--rss-child", mode, "--data", str(data or args.data)]
    for flag in ("rss_resolution", "rss_batches", "budget_mb", "threads", "arch", "width"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    cmd += ["--batch-size", str(args.batch_size), "--val-images", str(args.val_images)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(done.stdout.strip().splitlines()[-1])


def small_tree(root: Path, images: int, into: Path) -> Path:
    """The first files of every class directory of ``root``, linked into ``into``: the
    same kind of data, about ``images`` images in all."""
    leaves = sorted({f.parent for f in root.rglob("*.jpg")})
    keep = max(2, images // len(leaves))
    for leaf in leaves:
        target = into / leaf.relative_to(root)
        target.mkdir(parents=True)
        for f in sorted(leaf.iterdir())[:keep]:
            (target / f.name).symlink_to(f)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder tree (CIFAR-10)")
    parser.add_argument("--arch", default="mobilenet_v3_small")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rss-resolution", type=int, default=64)
    parser.add_argument("--rss-batches", type=int, default=8)
    parser.add_argument("--budget-mb", type=int, default=256, help="memory budget for auto")
    parser.add_argument(
        "--control-images", type=int, default=2000, help="small tree streamed for comparison"
    )
    parser.add_argument("--rss-child", choices=["memory", "auto", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    scratch = None
    if "NASCTL_CACHE" not in os.environ:  # a fresh cache: both paths decode the JPEGs
        scratch = tempfile.mkdtemp(prefix="nasctl-stream-bench-")
        os.environ["NASCTL_CACHE"] = scratch
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    speed = throughput(args, fresh=scratch is not None)
    try:
        memory = {mode: rss(args, mode) for mode in ("memory", "auto")}
        with tempfile.TemporaryDirectory(prefix="nasctl-small-tree-") as tmp:
            small = small_tree(args.data, args.control_images, Path(tmp) / "small")
            memory["stream-small"] = rss(args, "stream", small)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)  # the caches take about 2 GB
    report = {
        "bench": "stream_throughput",
        "arch": args.arch,
        "width": args.width,
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "batches": args.batches,
        "repeats": args.repeats,
        "threads": args.threads,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "throughput": speed,
        "memory": memory,
        "wall_seconds": time.perf_counter() - started,
        "command": "python bench/stream_throughput.py --data CIFAR_DIR "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k not in ("data", "out", "rss_child")
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    s = speed["summary"]
    print()
    print(f"{'path':8s} {'img/s median':>13s} {'min':>7s} {'max':>7s} {'fit s':>7s}")
    for mode in ("memory", "stream"):
        m = s[mode]
        print(
            f"{mode:8s} {m['images_per_second_median']:13.1f} {m['images_per_second_min']:7.1f} "
            f"{m['images_per_second_max']:7.1f} {m['fit_wall_seconds_median']:7.1f}"
        )
    print(
        f"ratio stream/memory: median {speed['ratio_median']:.3f} "
        f"(repeats {speed['ratio_min']:.3f}-{speed['ratio_max']:.3f}); goal >= 0.90"
    )
    print()
    print(
        f"{'child':12s} {'images':>7s} {'streamed':>8s} {'decoded MiB':>11s} {'budget':>7s} "
        f"{'peak RSS MiB':>12s}"
    )
    for mode, m in memory.items():
        print(
            f"{mode:12s} {m['images']:7d} {m['streamed']!s:>8s} {m['decoded_mib']:11.0f} "
            f"{m['budget_mib']:7d} "
            f"{m['peak_rss_mib']:12.0f}"
        )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

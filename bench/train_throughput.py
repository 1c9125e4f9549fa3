"""Training throughput of our loop (``estimators.fit``: batch gather, tensor augmentation,
normalisation, schedule, NaN check, bookkeeping) against a bare PyTorch loop (one
pre-made float batch; forward, loss, backward, SGD step) on the same model and batch,
for the four baselines at width 1.0 and 32x32. Writes bench/results/train_throughput.json.

    flock /tmp/nasctl-heavy.lock python bench/train_throughput.py --decode /tmp/cifar10

Rounds alternate bare / ours on fresh models from the same seed; the first ``--warmup``
steps of each are not timed (oneDNN picks kernels on the first calls), so both sides pay
the same. Every step is timed on its own; a side's speed in a round is the batch size over
its median step time, so a step stretched by another tenant of this shared machine does
not decide the figure. The ratio of each round (ours / bare) cancels slower drift; the
median round is reported with the spread over rounds, next to the mean-time figures.

On a machine shared with other jobs even per-step medians of two separate loops move by
tens of percent between rounds, so a third figure measures our overhead directly:
``paired_overhead_share`` is, step by step, the time of what ``fit`` does besides the
bare step, over the whole step, with both parts timed back to back (median over steps
and rounds); the throughput ratio it implies is 1 - share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from estimators import ImageData, Recipe, _data, fit, load_data, new_state
from estimators._loop import augment, lr_at, make_optimizer, normalise
from search_space import baseline_names, build_model, get_baseline

OUT = Path(__file__).parent / "results" / "train_throughput.json"


def synthetic(n: int, resolution: int, classes: int = 10) -> ImageData:
    """Random uint8 images: pixel values do not change the cost of a step."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, resolution, resolution), generator=gen, dtype=torch.uint8)
    y = torch.arange(n) % classes
    return ImageData(
        "synthetic", tuple(str(i) for i in range(classes)), resolution, x, y, x[:64], y[:64]
    )


def bare_loop(spec, recipe: Recipe, steps: int, warmup: int) -> list[float]:
    """Seconds of each step after the warm-up."""
    model = build_model(spec, seed=recipe.seed)
    opt = make_optimizer(model, recipe)
    model.train()
    x = torch.randn(recipe.batch_size, 3, spec.resolution, spec.resolution)
    y = torch.arange(recipe.batch_size) % spec.num_classes
    durations = []
    for step in range(steps):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= warmup:
            durations.append(time.perf_counter() - start)
    return durations


def our_loop(spec, data: ImageData, recipe: Recipe, warmup: int) -> list[float]:
    """Seconds between consecutive step callbacks after the warm-up: batch gather,
    augmentation, normalisation, the step and our bookkeeping."""
    stamps: list[float] = []

    def tick(p) -> None:
        if p.val_top1 is None:
            stamps.append(time.perf_counter())

    fit(new_state(spec, data, recipe), data, on_progress=tick)
    return [b - a for a, b in zip(stamps[warmup - 1 :], stamps[warmup:], strict=False)]


def paired_overhead(spec, data: ImageData, recipe: Recipe, steps: int, warmup: int) -> float:
    """Our per-step work outside forward/backward/step (batch gather, augmentation,
    normalisation, schedule, RNG and accuracy bookkeeping: what ``fit`` adds to the bare
    loop), timed right before the step it feeds, as a share of the whole: adjacent in time,
    both parts see the same machine, so a busy neighbour hardly moves the share."""
    state = new_state(spec, data, recipe)
    model, opt = state.model, state.optimizer
    model.train()
    pad = round(recipe.pad * data.resolution)
    mean = torch.tensor(state.mean).view(1, 3, 1, 1)
    std = torch.tensor(state.std).view(1, 3, 1, 1)
    n = len(data.train_y)
    shares = []
    for step in range(steps):
        t0 = time.perf_counter()
        torch.set_rng_state(state.rng)
        idx = torch.randperm(n)[: recipe.batch_size]
        x = normalise(augment(data.train_x[idx], state.aug_gen, pad, recipe.flip), mean, std)
        y = data.train_y[idx]
        lr = lr_at(step, 100, recipe)
        for group in opt.param_groups:
            group["lr"] = lr
        t1 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        state.rng = torch.get_rng_state()
        _ = loss.item() * len(y), int((logits.argmax(1) == y).sum())
        t3 = time.perf_counter()
        if step >= warmup:
            ours = (t1 - t0) + (t3 - t2)
            shares.append(ours / (t3 - t0))
    return statistics.median(shares)


def time_decode(path: str, resolution: int) -> dict[str, object]:
    """Cold: every file decoded (no disk cache). Cached: a fresh process's view, memory
    cache cleared, tensors read from the disk cache (written by the first warm call)."""
    start = time.perf_counter()
    data = load_data(path, resolution, disk_cache=False)
    cold = time.perf_counter() - start
    _data._MEMORY.clear()
    load_data(path, resolution)  # writes the disk cache if absent
    _data._MEMORY.clear()
    start = time.perf_counter()
    load_data(path, resolution)
    cached = time.perf_counter() - start
    _data._MEMORY.clear()
    return {
        "data": data.name,
        "files": len(data.train_y) + len(data.val_y) + len(data.skipped),
        "cold_seconds": round(cold, 2),
        "cached_seconds": round(cached, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode", help="also time decoding this image tree, cold and cached")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    decode = None
    if args.decode:
        decode = time_decode(args.decode, args.resolution)
        print(json.dumps(decode), flush=True)
    recipe = Recipe(epochs=1, batch_size=args.batch_size, bn_images=0)
    data = synthetic(args.steps * args.batch_size, args.resolution)
    rows = []
    for name in baseline_names():
        spec = get_baseline(name, 1.0, args.resolution, 10)
        bare, ours, ratios, mean_ratios, shares = [], [], [], [], []
        for _ in range(args.rounds):
            b = bare_loop(spec, recipe, args.steps, args.warmup)
            o = our_loop(spec, data, recipe, args.warmup)
            bare.append(args.batch_size / statistics.median(b))
            ours.append(args.batch_size / statistics.median(o))
            ratios.append(ours[-1] / bare[-1])
            mean_ratios.append(statistics.mean(b) / statistics.mean(o))
            shares.append(paired_overhead(spec, data, recipe, args.steps, args.warmup))
        row = {
            "baseline": name,
            "bare_images_per_second": round(statistics.median(bare), 1),
            "ours_images_per_second": round(statistics.median(ours), 1),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "mean_time_ratio": round(statistics.median(mean_ratios), 3),
            "paired_overhead_share": round(statistics.median(shares), 4),
            "paired_overhead_shares": [round(v, 4) for v in shares],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "bench": "train_throughput",
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "decode": decode,
        "loadavg_end": os.getloadavg(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

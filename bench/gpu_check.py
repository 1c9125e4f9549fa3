"""The GPU path in one command: MobileNetV2's training rate at 224 px on a device against
that device's measured matmul peak, then a short `nasctl search --device D` and
`nasctl compare --device D`. Writes one JSON file (default
bench/results/gpu_check_<device>.json).

    python bench/gpu_check.py --device cuda                     # on a machine with a GPU
    python bench/gpu_check.py --device cpu --resolution 64 --batch-size 16 --steps 4 \
        --warmup 2 --trials 2 --images 128                      # the same code, tiny, on CPU

Throughput: ``fit`` (the loop `nasctl train` runs: uint8 gather, copy to the device,
crop and flip there, autocast, channels_last, loss scaling for fp16) on random uint8
images with 1,000 classes, against a bare loop (one float batch already on the device:
forward, loss, backward, SGD step, same precision and layout); each step is timed on its
own (a CUDA step ends in a synchronising ``loss.item()``), the first ``--warmup`` steps
are not timed, and a side's rate is the batch over its median step. ``fit`` runs twice on
CUDA: with deterministic kernels (the default of every command) and with cuDNN's
autotuner (``deterministic=False``).

Repeatability: the same seed trained twice on the device (deterministic kernels): are
the weights bitwise equal (they are on the CPU; on CUDA only where every kernel has a
deterministic implementation)?

Training FLOPs per image are taken as 3 x 2 x MACs (forward: 2 FLOPs per MAC; backward
about twice the forward), so "achieved TFLOP/s" is comparable with the peak of a dense
matmul measured here in the same precision (``--matmul-size``), and with a datasheet
figure if ``--peak-tflops`` is given.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from estimators import ImageData, Recipe, count, fit, load_data, new_state, resolve_device
from estimators._device import TrainDevice
from estimators._loop import make_optimizer
from search_space import build_model, get_baseline, parse_arch

RESULTS = Path(__file__).parent / "results"


def synthetic(n: int, resolution: int, classes: int) -> ImageData:
    """Random uint8 images: pixel values do not change the cost of a step."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, resolution, resolution), generator=gen, dtype=torch.uint8)
    y = torch.arange(n) % classes
    names = tuple(f"c{i}" for i in range(classes))
    return ImageData("synthetic", names, resolution, x, y, x[:64], y[:64])


def _sync(device: TrainDevice) -> None:
    if device.is_cuda:
        torch.cuda.synchronize(device.device)


def ours(spec: Any, data: ImageData, batch: int, device: TrainDevice, warmup: int) -> list[float]:
    """Seconds of each ``fit`` step after the warm-up (one epoch over ``data``)."""
    recipe = Recipe(epochs=1, batch_size=batch, bn_images=0, warmup_epochs=0.0)
    stamps: list[float] = []

    def tick(p: Any) -> None:
        if p.val_top1 is None:  # a step's report (the epoch's carries val_top1)
            stamps.append(time.perf_counter())

    fit(new_state(spec, data, recipe), data, on_progress=tick, device=device)
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    return steps[warmup:]


def bare(spec: Any, batch: int, steps: int, device: TrainDevice, warmup: int) -> list[float]:
    """Seconds of each bare step (a float batch already on the device) after the warm-up."""
    model = device.place(build_model(spec, seed=0))
    opt = make_optimizer(model, Recipe(batch_size=batch))
    scaler = device.scaler()
    model.train()
    x = device.layout(torch.randn(batch, 3, spec.resolution, spec.resolution).to(device.device))
    y = (torch.arange(batch) % spec.num_classes).to(device.device)
    durations = []
    with device.session():
        for _ in range(warmup + steps):
            started = time.perf_counter()
            with device.autocast():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            loss.item()
            durations.append(time.perf_counter() - started)
    return durations[warmup:]


def matmul_tflops(device: TrainDevice, size: int, reps: int = 20) -> float:
    """Dense matmul rate in the training precision (fp32 when it is fp32): the peak the
    model's rate is set against, measured rather than quoted."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(device.precision.value)
    a = torch.randn(size, size, device=device.device, dtype=dtype or torch.float32)
    b = torch.randn(size, size, device=device.device, dtype=dtype or torch.float32)
    for _ in range(3):
        a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - started) / 1e12


def throughput(args: argparse.Namespace, device: TrainDevice) -> dict[str, Any]:
    spec = get_baseline("mobilenet_v2", 1.0, args.resolution, 1000)
    macs = count(spec).macs
    flops_per_image = 3 * 2 * macs
    data = synthetic(args.batch_size * (args.steps + args.warmup + 1), args.resolution, 1000)
    runs: dict[str, list[float]] = {
        "fit": ours(spec, data, args.batch_size, device, args.warmup),
        "bare": bare(spec, args.batch_size, args.steps, device, args.warmup),
    }
    if device.is_cuda:
        fast = TrainDevice(device.device, device.precision, device.name, device.channels_last,
                           deterministic=False)  # fmt: skip
        runs["fit_autotuned"] = ours(spec, data, args.batch_size, fast, args.warmup)
    peak = matmul_tflops(device, args.matmul_size)
    out: dict[str, Any] = {
        "model": "mobilenet_v2 width 1.0, 1000 classes",
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "timed_steps": {k: len(v) for k, v in runs.items()},
        "macs": macs,
        "train_flops_per_image": flops_per_image,
        "matmul_tflops_measured": round(peak, 4),
        "matmul_size": args.matmul_size,
    }
    for name, steps in runs.items():
        rate = args.batch_size / statistics.median(steps)
        achieved = rate * flops_per_image / 1e12
        out[name] = {
            "images_per_second": round(rate, 1),
            "median_step_ms": round(statistics.median(steps) * 1000, 2),
            "achieved_tflops": round(achieved, 3),
            "share_of_matmul_peak": round(achieved / peak, 4),
        }
        if args.peak_tflops:
            out[name]["share_of_datasheet_peak"] = round(achieved / args.peak_tflops, 4)
    out["fit_over_bare"] = round(
        out["fit"]["images_per_second"] / out["bare"]["images_per_second"], 3
    )
    if args.peak_tflops:
        out["datasheet_peak_tflops"] = args.peak_tflops
    return out


def repeatability(device: TrainDevice) -> dict[str, Any]:
    """Two runs of the same seed on the device (a small network on digits, one epoch):
    whether their weights are bitwise equal, and how far apart they are if not."""
    spec = parse_arch(
        "r32_n10,stem_k3_s2_c16_re,ir_k3_s2_e3_c24_re,ir_k5_s2_e3_c40_se0.25_hs,"
        "ir_k3_s2_e3_c80_hs,head_h128_hs_d0.2"
    )
    data = load_data("digits", 32)
    recipe = Recipe(epochs=1, batch_size=64, train_images=512, bn_images=0)
    runs = [fit(new_state(spec, data, recipe), data, device=device) for _ in range(2)]
    a, b = (r.model.state_dict() for r in runs)
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    return {"bitwise_equal": all(torch.equal(a[k], b[k]) for k in a), "max_abs_diff": diff}


def _nasctl(args: list[str], log: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nasctl", *args], capture_output=True, text=True, check=False
    )
    entry = {
        "command": "nasctl " + " ".join(args).replace(str(work), "$WORK"),
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if done.returncode != 0:
        entry["stderr_tail"] = (done.stderr or done.stdout)[-2000:]
    log.append(entry)
    return entry


def search_and_compare(args: argparse.Namespace, device: str, work: Path) -> dict[str, Any]:
    """A short search and compare on the embedded digits (no files or network needed)."""
    import pandas as pd

    from results._study import open_existing

    out = work / "runs"
    threads = str(args.threads)
    common = ["--device", device, "--precision", args.precision, "--threads", threads]
    log: list[dict[str, Any]] = []
    search = _nasctl(
        ["search", "--space", "tiny", "--data", "digits", "--target", "flops", "--trials",
         str(args.trials), "--images", str(args.images), "--batch-size", "64", "--population",
         "2", "--runs", str(out), "--study", "gpu", *common],
        log,
        work,
    )  # fmt: skip
    result: dict[str, Any] = {"commands": log}
    if search["returncode"] != 0:
        return result
    study = open_existing("gpu", out, None)
    trained = [t.user_attrs for t in study.trials if "accuracy" in t.user_attrs]
    result["search"] = {
        "trials": len(study.trials),
        "devices": sorted({a.get("device", "?") for a in trained}),
        "train_seconds": round(sum(a.get("train_seconds", 0.0) for a in trained), 1),
    }
    compare = _nasctl(
        ["compare", "--runs", str(out), "--study", "gpu", "--top", "1", "--preset", "search",
         "--images", str(args.images), "--latency-rounds", "2", "--latency-runs", "1",
         "--format", "csv", *common],
        log,
        work,
    )  # fmt: skip
    if compare["returncode"] == 0:
        frame = pd.read_csv(out / "gpu" / "compare" / "compare.csv")
        result["compare"] = {
            "models": len(frame),
            "devices": sorted(set(frame["device"].astype(str))),
            "train_seconds": round(float(frame["train_seconds"].sum()), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--peak-tflops", type=float, help="the datasheet's dense peak, if known")
    parser.add_argument("--trials", type=int, default=6, help="search trials")
    parser.add_argument("--images", type=int, default=2048, help="images per candidate")
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = resolve_device(args.device, args.precision)
    torch.set_num_threads(args.threads)
    name = device.device.type + (f"{device.device.index}" if device.is_cuda else "")
    path = args.out or RESULTS / f"gpu_check_{name}.json"
    report: dict[str, Any] = {
        "device": device.label,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "argv": ["OUT" if a == str(args.out) else a for a in sys.argv[1:]],
    }
    if device.is_cuda:
        props = torch.cuda.get_device_properties(device.device)
        report["gpu"] = {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
        }
    started = time.perf_counter()
    report["throughput"] = throughput(args, device)
    print(json.dumps(report["throughput"], indent=2), flush=True)
    report["repeatability"] = repeatability(device)
    if not args.skip_search:
        work = Path(tempfile.mkdtemp(prefix="nasctl-gpu-check-"))
        try:
            report.update(search_and_compare(args, args.device, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    failed = [c for c in report.get("commands", []) if c["returncode"] != 0]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Retrain chosen front members and the baselines with one recipe, time them together,
and say which candidate beats which baseline.

Each model's training result is written to ``<folder>/models/<name>.json`` as soon as it
is known (its trained weights beside it, ``<name>.pt``, a training checkpoint that
``nasctl export --checkpoint`` reads), keyed by its arch string and recipe, so an
interrupted comparison resumes without retraining what finished. Several processes can
run the same comparison at once (one training thread each is the most efficient use of a
small machine): a process claims a model in ``<name>.claim`` (host:pid) before training
it, skips models claimed by a live process and waits for their results at the end; a
claim whose process died is taken over. Latency is measured at the end for all models at
once, in interleaved rounds with MobileNetV2 as the reference of every round, as many
times as asked; a candidate is faster than a baseline when its ratio to that MobileNetV2
is lower in every measurement.

Accuracy is reported on the data's held-out test split (``load_data``: ``test/``,
CIFAR's ``test_batch``, or a share of train carved out with a fixed seed), which no
search trained or selected on: ``accuracy`` (test top-1; ``top5`` is on test too) is
the figure the comparison goes by; ``val_accuracy`` (the split the search selected on)
is beside it and is what the winner (``compare_winner``) is picked by, and
``test_split`` says where the test images came from.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from estimators import (
    LatencyConfig,
    Recipe,
    TrainDevice,
    TrainProgress,
    count,
    evaluate,
    load_checkpoint,
    load_data,
    measure_many,
    resolve_device,
    train_and_evaluate,
)
from results._baselines import baselines_of
from results._claims import claim_file
from results._compare_report import dominated
from results._report import front_frame, study_unit
from results._study import trials_frame
from search_space import ArchSpec, NasctlError, baseline_names, format_arch, get_baseline

__all__ = [
    "CompareError",
    "Contender",
    "choose_contenders",
    "run_compare",
]


class CompareError(NasctlError):
    """A comparison that cannot be run as asked."""


@dataclass(frozen=True)
class Contender:
    name: str
    spec: ArchSpec
    baseline: bool
    trial: int | None = None


def choose_contenders(
    study: optuna.Study,
    top: int,
    under_latency_ms: float | None,
    baseline_widths: list[float],
    baseline_resolutions: list[int] | None = None,
) -> list[Contender]:
    """The ``top`` most accurate front members (under the latency cap) and the baselines
    for each width and resolution (default: the study's baseline resolution). A variant
    off width 1.0 or off the study's resolution is labelled so, e.g.
    ``mobilenet_v2_0.75_r32``."""
    if top < 1:
        raise CompareError(f"top must be at least 1, got {top}")
    if under_latency_ms is not None and under_latency_ms <= 0:
        raise CompareError(f"under-latency must be a positive number of ms, got {under_latency_ms}")
    meta = study.user_attrs.get("nasctl")
    if meta is None:
        raise CompareError(f"study {study.study_name!r} was not made by nasctl search")
    unit = study_unit(study)
    front = front_frame(trials_frame(study), unit)
    if under_latency_ms is not None:
        front = front[front["latency_ms"].astype(float) <= under_latency_ms]
    if front.empty:
        cap = f" under {under_latency_ms:g} ms" if under_latency_ms is not None else ""
        raise CompareError(f"study {study.study_name!r} has no feasible trained trial{cap}")
    chosen = front.sort_values("accuracy", ascending=False).head(top)
    contenders = [
        Contender(
            f"trial_{int(row.number)}",
            ArchSpec.from_json(_spec_json(study, int(row.number))),
            False,
            int(row.number),
        )
        for row in chosen.itertuples()
    ]
    recorded = baselines_of(study)
    default = recorded[0]["resolution"] if recorded else contenders[0].spec.resolution
    classes = contenders[0].spec.num_classes
    for width in baseline_widths:
        if not 0 < width <= 4:
            raise CompareError(f"baseline width must be in (0, 4], got {width}")
    for resolution in baseline_resolutions or [default]:
        if not 16 <= resolution <= 1024:
            raise CompareError(f"baseline resolution must be in [16, 1024], got {resolution}")
    for resolution in baseline_resolutions or [default]:
        for width in baseline_widths:
            for name in baseline_names():
                label = name if width == 1.0 else f"{name}_{width:g}"
                label += "" if resolution == default else f"_r{resolution}"
                spec = get_baseline(name, width, resolution, classes)
                contenders.append(Contender(label, spec, True))
    return contenders


def _spec_json(study: optuna.Study, number: int) -> str:
    return str(study.trials[number].user_attrs["spec"])


def run_compare(
    contenders: list[Contender],
    data: str,
    recipe: Recipe,
    folder: Path,
    latency: LatencyConfig,
    seed: int = 0,
    threads: int | None = None,
    on_progress: Callable[[str, TrainProgress | None], None] | None = None,
    poll_seconds: float = 10.0,
    latency_runs: int = 1,
    device: TrainDevice | str | None = None,
    data_mode: str = "auto",
) -> pd.DataFrame:
    """Train every contender (or reuse its saved result), time them all together
    ``latency_runs`` times (each run interleaved rounds with MobileNetV2 as the reference),
    and return one row per model (latency figures: medians over the runs), with the
    baselines each candidate dominates. ``device``: where models train (default the CPU
    at fp32); each row's ``device`` says where and at what precision it trained (a saved
    result is reused whichever device trained it). ``data_mode``: ``load_data``'s mode."""
    if latency_runs < 1:
        raise CompareError(f"latency runs must be at least 1, got {latency_runs}")
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    # "splits": results from before the held-out test split was their val accuracy, on a
    # model whose training set held today's test images: they are retrained, not reused.
    keys = {
        c.name: {"arch": format_arch(c.spec), "recipe": recipe.to_dict(), "data": data}
        | {"seed": seed, "splits": "train/val/test"}
        for c in contenders
    }

    def train(c: Contender) -> dict[str, Any]:
        report_to: Callable[[TrainProgress], None] | None = None
        if on_progress is not None:
            on_progress(c.name, None)
            report_to = functools.partial(on_progress, c.name)
        loaded = load_data(data, c.spec.resolution, seed=seed, mode=data_mode)
        if loaded.test_x is None or loaded.test_y is None:
            raise CompareError(f"data {data!r} has no held-out test split to report on")
        result = train_and_evaluate(
            c.spec,
            loaded,
            recipe,
            seed=seed,
            threads=threads,
            on_progress=report_to,
            checkpoint=models / f"{c.name}.pt",
            device=device,
        )
        # The trained weights, read back from the checkpoint, on the held-out test split.
        dev = resolve_device(device)
        state = load_checkpoint(models / f"{c.name}.pt")
        test = evaluate(
            dev.place(state.model),
            loaded.test_x,
            loaded.test_y,
            state.classes,
            state.mean,
            state.std,
            device=dev,
        )
        record = {
            "key": keys[c.name],
            "accuracy": test.top1,
            "top5": test.top5,
            "val_accuracy": result.top1,
            "test_split": loaded.test_source,
            "test_images": test.images,
            "train_seconds": result.train_seconds,
            "device": result.device,
        }
        _write(models / f"{c.name}.json", record)
        return record

    records: dict[str, dict[str, Any]] = {}
    said: list[str] = []
    # First pass: what is done, and what this process can claim; then wait for the rest
    # (trained by another live process, or taken over when that process is gone).
    while len(records) < len(contenders):
        waiting = []
        for c in contenders:
            if c.name in records:
                continue
            record = _read(models / f"{c.name}.json")
            if record is not None and record.get("key") == keys[c.name]:
                records[c.name] = record
            elif claim_file(models / f"{c.name}.claim"):
                try:  # read again: another process may have finished it just now
                    record = _read(models / f"{c.name}.json")
                    done = record is not None and record.get("key") == keys[c.name]
                    records[c.name] = record if done and record is not None else train(c)
                finally:
                    (models / f"{c.name}.claim").unlink(missing_ok=True)
            else:
                waiting.append(c.name)
        if waiting:
            if on_progress is not None and waiting != said:
                on_progress("waiting for " + ", ".join(waiting), None)
            said = waiting
            time.sleep(poll_seconds)
    rows = []
    for c in contenders:
        record = records[c.name]
        key = keys[c.name]
        report = count(c.spec)
        rows.append(
            {
                "name": c.name,
                "baseline": c.baseline,
                "trial": c.trial,
                "accuracy": record["accuracy"],
                "top5": record["top5"],
                "val_accuracy": record["val_accuracy"],
                "test_split": record["test_split"],
                "test_images": record["test_images"],
                "macs": report.macs,
                "params": report.params,
                "train_seconds": record["train_seconds"],
                # Results saved before devices were recorded were trained on the CPU.
                "device": record.get("device", "cpu/fp32"),
                "arch": key["arch"],
            }
        )
    if on_progress:
        on_progress("latency", None)
    reference = get_baseline(
        "mobilenet_v2", 1.0, contenders[0].spec.resolution, contenders[0].spec.num_classes
    )
    runs = [
        measure_many(
            [c.spec for c in contenders],
            latency,
            reference=reference,
            names=[c.name for c in contenders],
        )
        for _ in range(latency_runs)
    ]
    for i, row in enumerate(rows):
        timed = [run[i] for run in runs]
        ratios = [r for t in timed if (r := t.ratio_to_reference) is not None]  # all: V2 timed
        row.update(
            latency_ms=statistics.median(t.median_us for t in timed) / 1000,
            latency_p10_ms=statistics.median(t.p10_us for t in timed) / 1000,
            latency_p90_ms=statistics.median(t.p90_us for t in timed) / 1000,
            iqr_ratio=statistics.median(t.iqr_ratio for t in timed),
            ratio_to_v2=statistics.median(ratios),
            ratio_to_v2_runs=" ".join(f"{r:.6f}" for r in ratios),
        )
    frame = pd.DataFrame(rows)
    frame["dominates"] = [dominated(row, frame) for row in frame.itertuples()]
    return frame


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)

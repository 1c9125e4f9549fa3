"""`nasctl compare`: the chosen front members against the four baselines, same recipe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from estimators import Preset
from nasctl._app import app, guarded, invoked, renamed
from nasctl._data_options import DataMode, DataModeOption, load_images
from nasctl._device_options import (
    DeviceOption,
    LatencyDeviceOption,
    Precision,
    PrecisionOption,
    training_device,
)
from nasctl._options import (
    FormatOption,
    LatencyThreadsOption,
    OldRunsOption,
    RunsOption,
    StorageOption,
    StudyOption,
)
from nasctl._output import OutputFormat, check_output, console, emit

if TYPE_CHECKING:
    from estimators import TrainProgress


def progress_line(name: str, p: TrainProgress | None) -> str | None:
    """What compare prints for a progress report: a line per model started and per
    finished epoch (the report that carries the validation top-1; the last step of the
    epoch, which has the same batch count, prints nothing), none per step."""
    if p is None and name.startswith("waiting for "):
        return f"{name} (trained by another compare process)"
    if p is None:
        what = "timing all models" if name == "latency" else "training"
        return f"[bold]{name}[/bold]: {what}"
    if p.val_top1 is None:
        return None
    return (
        f"  epoch {p.epoch + 1}/{p.epochs} loss {p.loss:.3f} val top-1 {p.val_top1:.4f} "
        f"{p.images_per_second:,.0f} img/s"
    )


@app.command()
@guarded
def compare(
    study: StudyOption = "search",
    runs: RunsOption = Path("runs"),
    storage: StorageOption = None,
    top: Annotated[int, typer.Option(help="How many front members to retrain.")] = 3,
    under_latency: Annotated[
        float | None, typer.Option(help="Only front members under this latency (ms).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data to train on (default: the study's).")
    ] = None,
    preset: Annotated[Preset, typer.Option(help="Training recipe preset.")] = Preset.full,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    images: Annotated[
        int | None,
        typer.Option(
            help="Train on about this many images instead: whole epochs at or above the "
            "training-set size, one epoch of a seeded subset below it."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the batch size.")] = None,
    baseline_width: Annotated[
        list[float] | None,
        typer.Option(help="Baseline width multipliers (repeat for variants; default 1.0)."),
    ] = None,
    baseline_resolution: Annotated[
        list[int] | None,
        typer.Option(
            help="Baseline input resolutions (repeat for variants; default: the study's)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every training run.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Training threads.")] = None,
    latency_threads: LatencyThreadsOption = 1,
    latency_rounds: Annotated[
        int, typer.Option(help="Interleaved latency rounds (every model and MobileNetV2 each).")
    ] = 10,
    latency_runs: Annotated[
        int,
        typer.Option(help="Whole latency measurements, a candidate must be faster in all of them."),
    ] = 3,
    fmt: FormatOption = OutputFormat.table,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = Precision.auto,
    data_mode: DataModeOption = DataMode.AUTO,
    latency_device: LatencyDeviceOption = "cpu",
    old_runs: OldRunsOption = None,
) -> None:
    """Retrain the best front members and the baselines the same way and compare them.

    One recipe and seed for all; latency measured together in interleaved rounds with
    MobileNetV2 timed in every round; each candidate that beats a baseline in accuracy at
    lower latency relative to that MobileNetV2 (x V2, robust to load drift) in every one
    of --latency-runs measurements is marked. Writes
    RUNS/STUDY/compare/{compare.csv, compare.png, compare.md} and each model's trained
    weights to RUNS/STUDY/compare/models/NAME.pt (for `nasctl export --compare-best`); an
    interrupted run resumes without retraining finished models. compare.csv records the
    device and precision each model trained with (--device, --precision).

    Accuracy is top-1 on the data's held-out test split (test/, CIFAR's test_batch, or
    a share of train carved out with a fixed seed), which the search never trained or
    selected on; val top-1 (the split the search selected on) is shown beside it.

    Example: `nasctl compare --study search --top 2 --images 4000`
    """
    from estimators import LatencyConfig, get_recipe
    from results import (
        choose_contenders,
        fidelity_recipe,
        open_existing,
        run_compare,
        write_compare_outputs,
    )

    dev = training_device(device, precision)  # a missing GPU: one line, before any work
    timing = LatencyConfig(threads=latency_threads, rounds=latency_rounds, device=latency_device)
    runs = renamed(runs, old_runs, "--runs", "--out")
    s = open_existing(study, runs, storage)
    check_output(runs / study / "compare", "--runs", directory=True)
    meta = s.user_attrs.get("nasctl", {})
    data = data or meta.get("data", "digits")
    contenders = choose_contenders(
        s, top, under_latency, baseline_width or [1.0], baseline_resolution
    )
    recipe = get_recipe(preset, epochs=epochs, batch_size=batch_size)
    # Decoded here, with a progress bar, once per resolution (run_compare reuses them).
    resolutions = sorted({c.spec.resolution for c in contenders})
    loaded = {r: load_images(data, r, seed, data_mode) for r in resolutions}
    if images is not None:
        size = len(loaded[contenders[0].spec.resolution].train_y)
        recipe = fidelity_recipe(recipe, images, size)
    folder = runs / study / "compare"

    def progress(name: str, p: TrainProgress | None) -> None:
        line = progress_line(name, p)
        if line is not None:
            console.print(line)

    frame = run_compare(
        contenders,
        data,
        recipe,
        folder,
        timing,
        seed,
        threads,
        progress,
        latency_runs=latency_runs,
        device=dev,
        data_mode=data_mode.value,
    )
    written = write_compare_outputs(frame, folder, study, preset, invoked())
    cols = [
        "name",
        "accuracy",
        "val_accuracy",
        "latency_ms",
        "latency_p10_ms",
        "latency_p90_ms",
        "ratio_to_v2",
        "macs",
        "params",
        "train_seconds",
        "device",
        "dominates",
    ]
    if fmt is not OutputFormat.table:  # the table says it in its headers and a line below
        cols[1:1] = ["test_split"]
    rows = frame.sort_values("ratio_to_v2")[cols].to_dict("records")
    emit(
        rows,
        fmt,
        "Candidates vs baselines (same recipe, interleaved latency)",
        {
            "accuracy": lambda v: f"{v:.4f}",
            "val_accuracy": lambda v: f"{v:.4f}",
            "latency_ms": lambda v: f"{v:.2f}",
            "latency_p10_ms": lambda v: f"{v:.2f}",
            "latency_p90_ms": lambda v: f"{v:.2f}",
            "ratio_to_v2": lambda v: f"{v:.3f}",
            "macs": lambda v: f"{v / 1e6:.2f}M",
            "params": lambda v: f"{v / 1e6:.3f}M",
            "train_seconds": lambda v: f"{v:.0f}",
            "dominates": lambda v: v or "-",
        },
        {"accuracy": "test top-1", "val_accuracy": "val top-1"},
    )
    if fmt is OutputFormat.table:
        first = frame.iloc[0]
        console.print(
            f"test top-1: the held-out test split ({first['test_split']}, "
            f"{int(first['test_images']):,} images), never trained or selected on by the "
            "search; val top-1: the split the search selected on.",
            highlight=False,
        )
        console.print(f"wrote {', '.join(str(p) for p in written)}")

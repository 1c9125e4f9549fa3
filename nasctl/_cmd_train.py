"""`nasctl train` and `nasctl eval`: accuracy of an architecture on the user's images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from estimators import CHECKPOINT_FILE, DEFAULT_DATA, Optimizer, Preset
from nasctl._app import app, guarded
from nasctl._data_options import DataMode, DataModeOption, DataOption, load_images
from nasctl._device_options import (
    DeviceOption,
    Precision,
    PrecisionOption,
    training_device,
)
from nasctl._options import ArchArgument, FormatOption, TorchThreadsOption, WidthOption
from nasctl._output import OutputFormat, check_output, console, emit
from nasctl._progress import training
from nasctl._resolve import resolve_arch
from search_space import ArchSpec, NasctlError, baseline_names

if TYPE_CHECKING:
    from estimators import TrainProgress


def _same_arch(given: ArchSpec, saved: ArchSpec, what: str) -> None:
    if given != saved:
        raise NasctlError(
            f"ARCH does not match the architecture saved in {what}; pass the same ARCH "
            f"(or the spec.json written beside the checkpoint)"
        )


@app.command()
@guarded
def train(
    arch: ArchArgument,
    data: DataOption = DEFAULT_DATA,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (default: the preset's).", show_default=False)
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--resolution",
            "-r",
            help="Input resolution; images are resized to it (default: 32 for baseline "
            "names, else the spec's).",
            show_default=False,
        ),
    ] = None,
    width: WidthOption = 1.0,
    preset: Annotated[
        Preset, typer.Option(help="Recipe: 'search' (low fidelity) or 'full'.")
    ] = Preset.search,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (override).")] = None,
    optimizer: Annotated[Optimizer | None, typer.Option(help="Override the preset.")] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory for checkpoint.pt, spec.json and metrics.json."
        ),
    ] = Path("runs/train"),
    resume: Annotated[bool, typer.Option(help=f"Continue from OUT/{CHECKPOINT_FILE}.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for weights, split, order, augmentation.")] = 0,
    threads: TorchThreadsOption = None,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = Precision.auto,
    data_mode: DataModeOption = DataMode.AUTO,
) -> None:
    """Train an architecture and write OUT/checkpoint.pt, OUT/spec.json, OUT/metrics.json.

    Deterministic for a seed on CPU. Ctrl-C saves a checkpoint; --resume continues it
    exactly where it stopped. On --device cuda it trains with mixed precision
    (--precision); the checkpoint and metrics record the device and precision.

    Example: `nasctl train mobilenet_v3_small --data cifar10 --epochs 5 -o runs/v3s`
    """
    import torch

    from estimators import (
        batches_per_epoch,
        evaluate,
        fit,
        get_recipe,
        load_checkpoint,
        new_state,
        save_checkpoint,
        write_metrics,
        write_spec,
    )

    dev = training_device(device, precision)
    check_output(out, "--out", directory=True)
    if threads is not None:
        torch.set_num_threads(threads)  # in range: checked by guarded
    path = out / CHECKPOINT_FILE
    if resume:
        state = load_checkpoint(path)
        if epochs is not None:
            state.recipe = state.recipe.replace(epochs=epochs)
        if state.done:
            raise NasctlError(
                f"{path} has finished {state.epoch} epoch(s); pass --epochs above that to "
                "train further"
            )
        loaded = load_images(data, state.spec.resolution, state.recipe.seed, data_mode)
        spec = resolve_arch(arch, width, state.spec.resolution, loaded.num_classes)
        _same_arch(spec, state.spec, str(path))
        console.print(f"resuming at epoch {state.epoch + 1}, batch {state.batch}")
    else:
        if path.exists():
            raise NasctlError(
                f"{path} exists; pass --resume to continue it or choose another --out"
            )
        recipe = get_recipe(
            preset.value,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            seed=seed,
        )
        if resolution is None:
            resolution = 32 if arch in baseline_names() else resolve_arch(arch).resolution
        resolve_arch(arch, width, resolution)  # a bad ARCH, width or size: before the data
        loaded = load_images(data, resolution, seed, data_mode)
        spec = resolve_arch(arch, width, resolution, loaded.num_classes)
        state = new_state(spec, loaded, recipe)

    write_spec(out, state)
    batches = batches_per_epoch(len(loaded.train_y), state.recipe)
    with training(
        state,
        lambda: save_checkpoint(state, path),
        path,
        "continue with --resume",
        state.recipe.epochs,
        batches,
    ) as bar:

        def on_progress(p: TrainProgress) -> None:
            if p.val_top1 is not None:
                bar.line(
                    f"epoch {p.epoch + 1}/{p.epochs}: train loss {p.loss:.4f}, "
                    f"train top-1 {p.accuracy:.4f}, val top-1 {p.val_top1:.4f}"
                )
                save_checkpoint(state, path)  # every finished epoch is safe on disk
                return
            stats = f"loss {p.loss:.3f}  acc {p.accuracy:.3f}  {p.images_per_second:.0f} img/s"
            bar.step(p, f"epoch {p.epoch + 1}/{p.epochs}", stats)

        fit(state, loaded, on_progress=on_progress, device=dev)
    final = state.last_eval or evaluate(
        state.model, loaded.val_x, loaded.val_y, state.classes, state.mean, state.std, device=dev
    )
    metrics = write_metrics(out, state, loaded, final, arch)
    console.print(
        f"top-1 {final.top1:.4f}  top-5 {final.top5:.4f}  val loss {final.loss:.4f}  "
        f"({state.train_seconds:.1f} s, {metrics['images_per_second']:.0f} img/s on "
        f"{state.device}); "
        f"wrote {out}/",
        highlight=False,
    )


@app.command(name="eval")
@guarded
def eval_(
    arch: ArchArgument,
    checkpoint: Annotated[Path, typer.Option(help="A checkpoint.pt written by nasctl train.")],
    data: DataOption = DEFAULT_DATA,
    width: WidthOption = 1.0,
    fmt: FormatOption = OutputFormat.table,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = Precision.auto,
    data_mode: DataModeOption = DataMode.AUTO,
) -> None:
    """Top-1, top-5 and per-class accuracy of a checkpoint on the validation split.

    Example: `nasctl eval mobilenet_v3_small --checkpoint runs/v3s/checkpoint.pt --data cifar10`
    """
    from estimators import evaluate, load_checkpoint

    dev = training_device(device, precision)
    state = load_checkpoint(checkpoint)
    loaded = load_images(data, state.spec.resolution, state.recipe.seed, data_mode)
    spec = resolve_arch(arch, width, state.spec.resolution, state.spec.num_classes)
    _same_arch(spec, state.spec, str(checkpoint))
    if loaded.classes != state.classes:
        raise NasctlError(
            f"data {loaded.name!r} has classes {list(loaded.classes)} but the checkpoint "
            f"was trained on {list(state.classes)}"
        )
    dev.place(state.model)
    result = evaluate(
        state.model, loaded.val_x, loaded.val_y, state.classes, state.mean, state.std, device=dev
    )
    if fmt is OutputFormat.json:
        print(
            json.dumps(
                {
                    "top1": result.top1,
                    "top5": result.top5,
                    "loss": result.loss,
                    "images": result.images,
                    "per_class": result.per_class,
                    "trained_on": state.device,
                    "evaluated_on": dev.label,
                },
                indent=2,
            )
        )
        return
    summary = [
        {
            "images": result.images,
            "top1": round(result.top1, 4),
            "top5": round(result.top5, 4),
            "loss": round(result.loss, 4),
        }
    ]
    emit(summary, fmt, "Accuracy on the validation split")
    rows = [{"class": c, "top1": round(a, 4)} for c, a in result.per_class.items()]
    emit(rows, fmt, "Per class")

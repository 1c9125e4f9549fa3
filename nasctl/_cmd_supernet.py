"""`nasctl supernet train|score`: a weight-sharing supernet over a search space, trained
once, then scoring an architecture in seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from estimators import DEFAULT_DATA
from nasctl._app import command_group, guarded
from nasctl._data_options import DataMode, DataModeOption, DataOption, load_images
from nasctl._device_options import (
    DeviceOption,
    Precision,
    PrecisionOption,
    training_device,
)
from nasctl._options import FormatOption, SpaceOption, TorchThreadsOption, WidthOption
from nasctl._output import OutputFormat, check_output, console, emit, err_console
from nasctl._progress import training
from nasctl._resolve import resolve_arch
from search_space import NasctlError, SearchSpace, baseline_names, space_source

if TYPE_CHECKING:
    from estimators import ImageData, Supernet, SupernetProgress, SupernetState, TrainDevice

supernet_app = command_group(
    "supernet",
    "Train a weight-sharing supernet over a search space; score architectures with it."
    "\n\nExample: `nasctl supernet train --data cifar10 -o runs/supernet.pt`",
)


def _threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)  # in range: checked by guarded


def _space_text(space: Path | None) -> str:
    text, where = space_source(space)
    SearchSpace.from_text(text, where)  # refuse a bad file up front
    return text


def _same_run(state: SupernetState, out: Path, given: dict[str, Any]) -> None:
    """Options given again must be the file's (only --epochs may grow)."""
    recipe = state.recipe.flat()
    for name, value in given.items():
        if value is not None and recipe[name] != value:
            flag = "--" + name.replace("_", "-")
            raise NasctlError(
                f"{out} was trained with {flag} {recipe[name]}, not {value}; run the same "
                "command to continue it, or choose another --out"
            )


@supernet_app.command("train")
@guarded
def train(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The supernet file to write (and to resume).")
    ],
    data: DataOption = DEFAULT_DATA,
    space: SpaceOption = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs (default 5; more extends a finished file).", show_default=False),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step (default 128).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default 0.1).")] = None,
    random_subnets: Annotated[
        int | None,
        typer.Option(help="Random sub-networks per step besides the largest and smallest (2)."),
    ] = None,
    distill: Annotated[
        bool | None,
        typer.Option(
            "--distill/--no-distill",
            help="Sub-networks learn the largest's predictions (default) or the labels.",
            show_default=False,
        ),
    ] = None,
    train_images: Annotated[
        int | None, typer.Option(help="Train on a seeded subset of this many images.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, split, order, sampling.")] = 0,
    threads: TorchThreadsOption = None,
    save_every: Annotated[
        float, typer.Option(help="Seconds between checkpoints (and after every epoch).")
    ] = 120.0,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = Precision.auto,
    data_mode: DataModeOption = DataMode.AUTO,
) -> None:
    """Train one supernet over the space with the sandwich rule and write it to OUT.

    Each step trains the largest, the smallest and random sub-networks on one batch.
    OUT is written atomically every --save-every seconds, after every epoch and on
    Ctrl-C; running the same command again continues it (on any --device).

    Example: `nasctl supernet train --data cifar10 --space photos -o runs/supernet.pt`
    """
    from estimators import SupernetRecipe, data_identity, load_supernet_state, new_supernet_state

    dev = training_device(device, precision)
    check_output(out, "--out", directory=False)
    _threads(threads)
    if save_every <= 0:
        raise NasctlError(f"--save-every must be > 0 seconds, got {save_every:g}")
    text = _space_text(space)
    resolutions = SearchSpace.from_text(text).resolutions
    given: dict[str, Any] = {
        "batch_size": batch_size,
        "lr": lr,
        "random_subnets": random_subnets,
        "distill": distill,
        "train_images": train_images,
        "seed": seed,
    }
    if out.exists():
        state = load_supernet_state(out)
        if state.supernet.space != SearchSpace.from_text(text):
            raise NasctlError(
                f"{out} holds a supernet of space {state.supernet.space.name!r}, not of this "
                "--space; choose another --out"
            )
        _same_run(state, out, given)
        loaded = {r: load_images(data, r, seed, data_mode) for r in resolutions}
        trained, first = state.supernet.trained_on, loaded[resolutions[0]]
        if trained is not None and data_identity(first, seed) != trained:
            raise NasctlError(
                f"{out} was trained on data {trained.name!r} ({len(trained.classes)} classes, "
                f"split seed {trained.seed}), not on {first.name!r}; choose another --out"
            )
        if epochs is not None and epochs != state.recipe.base.epochs:
            if epochs < state.epoch:
                raise NasctlError(
                    f"{out} has finished {state.epoch} epoch(s); --epochs must be at least that"
                )
            state.recipe = state.recipe.replace(epochs=epochs)
        if state.done:
            console.print(
                f"{out} is trained: {state.epoch} epoch(s), {state.train_seconds:.0f} s; pass "
                f"--epochs above {state.epoch} to train further",
                highlight=False,
            )
            return
        console.print(f"resuming {out} at epoch {state.epoch + 1}, batch {state.batch}")
    else:
        overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if epochs is not None:
            overrides["epochs"] = epochs
        recipe = SupernetRecipe.of(**overrides)
        loaded = {r: load_images(data, r, seed, data_mode) for r in resolutions}
        state = new_supernet_state(text, loaded[resolutions[0]], recipe, data_seed=seed)
    _fit(state, loaded, out, save_every, dev)


def _fit(
    state: SupernetState,
    data: dict[int, ImageData],
    out: Path,
    save_every: float,
    device: TrainDevice,
) -> None:
    from estimators import fit_supernet, save_supernet

    saved = time.monotonic()
    with training(
        state,
        lambda: save_supernet(state, out),
        out,
        "run the same command to continue",
        state.recipe.base.epochs,
    ) as bar:

        def on_progress(p: SupernetProgress) -> None:
            nonlocal saved
            if p.epoch_end:
                scores = (
                    f", val top-1 largest {p.largest_top1:.4f} smallest {p.smallest_top1:.4f}"
                    if p.largest_top1 is not None and p.smallest_top1 is not None
                    else ""
                )
                bar.line(
                    f"epoch {p.epoch + 1}/{p.epochs}: loss {p.loss:.4f} (largest), "
                    f"{p.subnet_loss:.4f} (others){scores}"
                )
                save_supernet(state, out)
                saved = time.monotonic()
                return
            what = f"epoch {p.epoch + 1}/{p.epochs} step {p.step}"
            stats = f"loss {p.loss:.3f}  {p.images_per_second:.0f} img/s"
            bar.step(p, what, stats)
            if time.monotonic() - saved >= save_every:
                save_supernet(state, out)
                saved = time.monotonic()

        fit_supernet(state, data, on_progress=on_progress, device=device)
    console.print(
        f"trained {state.epoch} epoch(s) in {state.train_seconds:.1f} s "
        f"({state.images / max(state.train_seconds, 1e-9):.0f} img/s on {state.device}); "
        f"wrote {out}",
        highlight=False,
    )


@supernet_app.command("score")
@guarded
def score(
    arch: Annotated[
        list[str],
        typer.Argument(metavar="ARCH", help="Baseline names, arch strings or spec .json files."),
    ],
    supernet: Annotated[Path, typer.Option(help="A file written by nasctl supernet train.")],
    data: DataOption = DEFAULT_DATA,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--resolution",
            "-r",
            help="Input resolution (default: the spec's; the space's largest for baselines).",
            show_default=False,
        ),
    ] = None,
    width: WidthOption = 1.0,
    recal_batches: Annotated[
        int, typer.Option(help="Training batches (of 128) to recompute BatchNorm statistics.")
    ] = 8,
    val_images: Annotated[
        int | None,
        typer.Option(
            help="Score on this many validation images (default: all).", show_default=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the recalibration images.")] = 0,
    threads: TorchThreadsOption = None,
    fmt: FormatOption = OutputFormat.table,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = Precision.auto,
) -> None:
    """Validation top-1 of each ARCH with the supernet's weights (after recalibrating
    BatchNorm on a few training batches): a ranking signal, not trained accuracy.

    Example: `nasctl supernet score mobilenet_v2 mobilenet_v3_small --supernet runs/supernet.pt`
    """
    from estimators import load_supernet

    dev = training_device(device, precision)
    _threads(threads)
    net = load_supernet(supernet)
    dev.place(net)
    specs = []
    for text in arch:
        res = resolution
        if res is None and text in baseline_names():
            res = max(net.space.resolutions)
        spec = resolve_arch(text, width, res, net.num_classes)
        try:
            net.layout(spec)
        except NasctlError as exc:
            raise NasctlError(f"{text[:60]}: {exc}") from None
        specs.append(spec)
    _describe(net, supernet)
    seed_split = net.trained_on.seed if net.trained_on else 0
    loaded: dict[int, ImageData] = {}
    rows = []
    for text, spec in zip(arch, specs, strict=True):
        if spec.resolution not in loaded:
            loaded[spec.resolution] = load_images(data, spec.resolution, seed_split)
        started = time.perf_counter()
        top1 = net.score(
            spec,
            loaded[spec.resolution],
            recal_batches=recal_batches,
            seed=seed,
            val_images=val_images,
            device=dev,
        )
        rows.append(
            {
                "arch": text,
                "resolution": spec.resolution,
                "top1": top1,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    emit(rows, fmt, "Supernet top-1 on the validation split", {"top1": lambda v: f"{v:.4f}"})


def _describe(net: Supernet, path: Path) -> None:
    trained = net.trained_on
    on = f"{trained.name!r}, {len(trained.classes)} classes" if trained else "no data"
    err_console.print(
        f"supernet {path}: space {net.space.name!r}, trained on {on}, "
        f"{net.epochs_done:g} epoch(s) in {net.train_seconds:.0f} s on {net.trained_device}",
        highlight=False,
        soft_wrap=True,  # one line in a log, however long the path
    )

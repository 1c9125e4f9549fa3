"""`nasctl search`: the multi-objective architecture search, with a live view."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from estimators import DEFAULT_DATA, Preset
from nasctl._app import app, guarded, invoked, renamed
from nasctl._cmd_results import print_front
from nasctl._data_options import DataMode, DataModeOption, DataOption
from nasctl._device_options import (
    DeviceOption,
    LatencyDeviceOption,
    Precision,
    PrecisionOption,
    training_device,
)
from nasctl._options import (
    LatencyThreadsOption,
    LutOption,
    OldRunsOption,
    RunsOption,
    SpaceOption,
    StorageOption,
    format_option,
)
from nasctl._output import OutputFormat, check_output, console, err_console
from nasctl._search_view import LiveView
from results import AccuracyMode, Sampler, SearchTarget


class LatencySource(StrEnum):
    """Where a candidate's latency comes from."""

    measured = "measured"
    lut = "lut"


@app.command()
@guarded
def search(
    target: Annotated[
        SearchTarget, typer.Option(help="The cost to minimise beside maximising accuracy.")
    ] = SearchTarget.latency,
    data: DataOption = DEFAULT_DATA,
    space: SpaceOption = None,
    trials: Annotated[
        int,
        typer.Option(
            help="Finished trials the study should reach (halving: new candidates; their "
            "promotions come on top)."
        ),
    ] = 12,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting new trials after this many seconds.")
    ] = None,
    sampler: Annotated[Sampler, typer.Option(help="Optuna sampler.")] = Sampler.nsga2,
    population: Annotated[int, typer.Option(help="NSGA-II population size.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the sampler, data split and training.")] = 0,
    fidelity: Annotated[
        Preset, typer.Option(help="Training preset for candidates: search (low) or full.")
    ] = Preset.search,
    epochs: Annotated[
        int | None,
        typer.Option(help="Train each candidate for exactly E epochs (instead of --images)."),
    ] = None,
    images: Annotated[
        int,
        typer.Option(
            help="Fidelity: training images per candidate. At or above the training-set "
            "size: round(N / size) whole epochs; below it: one epoch of a seeded N-image subset."
        ),
    ] = 6000,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    baseline_resolution: Annotated[
        int | None,
        typer.Option(
            help="Input size (pixels) the four baselines are trained and timed at, here and "
            "in `nasctl compare`; give the size you will deploy at [default: the space's "
            "largest resolution]."
        ),
    ] = None,
    latency: Annotated[
        LatencySource,
        typer.Option(help="measured (time each candidate here) or lut (--lut table)."),
    ] = LatencySource.measured,
    lut: LutOption = None,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = Precision.auto,
    data_mode: DataModeOption = DataMode.AUTO,
    latency_device: LatencyDeviceOption = "cpu",
    threads: Annotated[
        int | None,
        typer.Option(
            help="Training threads (default: this machine's cores divided by the live "
            "workers on it); latency uses --latency-threads."
        ),
    ] = None,
    latency_threads: LatencyThreadsOption = 1,
    max_latency: Annotated[
        str | None,
        typer.Option(
            help="Hard budget on latency: milliseconds (2.5), or fastest-baseline / "
            "fastest-baseline-N% (N% under the fastest of the four baselines, timed at the "
            "search's baseline resolution when it starts; the chosen budget is printed and "
            "kept in the study)."
        ),
    ] = None,
    max_flops: Annotated[float | None, typer.Option(help="Hard budget: MACs, in millions.")] = None,
    max_params: Annotated[
        float | None, typer.Option(help="Hard budget: parameters, in millions.")
    ] = None,
    study: Annotated[str, typer.Option(help="Study name (re-run to resume it).")] = "search",
    storage: StorageOption = None,
    runs: RunsOption = Path("runs"),
    baselines: Annotated[
        bool, typer.Option(help="Train the four MobileNet baselines once per study.")
    ] = True,
    accuracy: Annotated[
        AccuracyMode,
        typer.Option(
            help="How candidates are scored: train (each with the full per-candidate "
            "budget), halving (successive halving on Pareto rank: many at a small budget, "
            "the best 1/eta promoted up to the full one), supernet (no training: scored by "
            "--supernet, trained once with `nasctl supernet train`)."
        ),
    ] = AccuracyMode.train,
    eta: Annotated[
        int | None,
        typer.Option(
            help="Halving: promote the best 1/eta of each rung; budgets grow x eta [default: 3]."
        ),
    ] = None,
    min_fidelity: Annotated[
        float | None,
        typer.Option(
            help="Halving: the lowest rung's share of the per-candidate budget (--images or "
            "--epochs) [default: 1/eta^2]."
        ),
    ] = None,
    supernet: Annotated[
        Path | None,
        typer.Option(help="Supernet file for --accuracy supernet (from `nasctl supernet train`)."),
    ] = None,
    fmt: Annotated[
        OutputFormat,
        format_option(
            "The final front-and-baselines table: table, or json / csv on stdout (the live "
            "view then goes to stderr)."
        ),
    ] = OutputFormat.table,
    old_runs: OldRunsOption = None,
) -> None:
    """Search architectures: maximise accuracy on --data, minimise --target.

    Each candidate is priced first (MACs and params analytically, latency from --lut or
    one measurement); a candidate over a --max-* budget is recorded but never trained.
    The four baselines are trained once per study with the same recipe, and timed
    together (interleaved rounds, MobileNetV2 in every round); --max-latency
    fastest-baseline-5% sets the budget 5% under the fastest of them. Re-running the
    same command resumes the study; Ctrl-C stops after recording what is done. Several
    processes with the same --study and --storage work on one study together. Writes
    RUNS/STUDY/{trials.csv, pareto.csv, baselines.csv, pareto.png, report.md} and prints
    the commands that come next (compare, export).

    --accuracy halving trains every new candidate on a small share of the budget and
    promotes the best-ranked 1/eta (Pareto rank, then crowding) to budgets eta times
    larger, up to the full one; the front uses each architecture's highest rung.
    --accuracy supernet scores each candidate with a supernet trained once over the same
    space and data (seconds, no training); baselines outside the space are trained.

    --device is where candidates train (cuda: mixed precision, see docs/gpu.md; one
    search worker per GPU: --device cuda:1); --latency-device is where latency is
    measured.

    Example: `nasctl search --data digits --trials 12 --max-latency fastest-baseline-5%`
    """
    from estimators import LatencyConfig, get_recipe
    from results import (
        SEARCH_LATENCY,
        TARGET_UNITS,
        SearchConfig,
        SearchError,
        parse_max_latency,
        run_search,
        write_search_outputs,
    )

    out = renamed(runs, old_runs, "--runs", "--out")
    max_latency_ms, under_fastest_pct = parse_max_latency(max_latency)
    training_device(device, precision)  # a missing GPU: one line, before any work
    check_output(out, "--runs", directory=True)
    if storage is not None and storage.endswith(".journal") and "://" not in storage:
        check_output(Path(storage), "--storage", directory=False)
    if accuracy is AccuracyMode.supernet and supernet is None:
        raise SearchError(
            "--accuracy supernet needs --supernet FILE (from `nasctl supernet train`)"
        )
    if accuracy is not AccuracyMode.supernet and supernet is not None:
        raise SearchError(
            f"--supernet only applies to --accuracy supernet (got --accuracy {accuracy.value})"
        )
    if accuracy is not AccuracyMode.halving:
        for flag, value in (("--eta", eta), ("--min-fidelity", min_fidelity)):
            if value is not None:
                raise SearchError(
                    f"{flag} only applies to --accuracy halving (got --accuracy {accuracy.value})"
                )
    if latency is LatencySource.lut and lut is None:
        raise SearchError("--latency lut needs a table: --lut FILE (from `nasctl lut build`)")
    recipe = get_recipe(fidelity.value, epochs=epochs, batch_size=batch_size)
    config = SearchConfig(
        study=study,
        target=target,
        space_path=space,
        data=data,
        data_mode=data_mode.value,
        trials=trials,
        timeout=timeout,
        sampler=sampler,
        population=population,
        seed=seed,
        recipe=recipe,
        fidelity=fidelity.value,
        images_per_candidate=None if epochs is not None else images,
        baseline_resolution=baseline_resolution,
        lut_path=lut if latency is LatencySource.lut else None,
        latency=LatencyConfig(
            rounds=SEARCH_LATENCY.rounds,
            repeats=SEARCH_LATENCY.repeats,
            min_warmup=SEARCH_LATENCY.min_warmup,
            max_warmup=SEARCH_LATENCY.max_warmup,
            device=latency_device,
            threads=latency_threads,
        ),
        threads=threads,
        max_latency_ms=max_latency_ms,
        max_latency_under_fastest_pct=under_fastest_pct,
        max_mmacs=max_flops,
        max_mparams=max_params,
        baselines=baselines,
        accuracy=accuracy,
        eta=3 if eta is None else eta,
        min_fidelity=min_fidelity,
        supernet_path=supernet,
        device=device,
        precision=precision.value,
    )
    shown = console if fmt is OutputFormat.table else err_console
    view = LiveView(target, trials, shown)
    interrupted = False
    with view.live, view.ctrl_c.installed():
        try:
            result = run_search(config, out, storage, view.on_event, [view.on_trial])
        except KeyboardInterrupt:
            interrupted = True
    shown.print()
    if interrupted:
        err_console.print(
            "[yellow]interrupted:[/yellow] finished trials are saved; "
            "re-run the same command to resume"
        )
        from results import open_existing

        result = open_existing(study, out, storage)
    try:
        outputs = write_search_outputs(result, out, storage, TARGET_UNITS[target], invoked())
    except OSError as exc:  # a full disk, a read-only folder: the study itself is saved
        reason = exc.strerror or str(exc)
        raise SearchError(
            f"cannot write the outputs to {str(out / study)!r}: {reason}; the study is saved, "
            "`nasctl results show` reads it"
        ) from None
    full_at = outputs.folder / "pareto.csv"
    print_front(outputs.front, outputs.baselines, TARGET_UNITS[target], fmt, full_at)
    shown.print(f"wrote {', '.join(map(str, outputs.written))}", highlight=False, soft_wrap=True)
    shown.print("next: retrain the front against the baselines, then export the winner:")
    for step in outputs.next_steps:
        shown.print(f"  {step}", highlight=False, soft_wrap=True)
    if interrupted:
        raise typer.Exit(130)

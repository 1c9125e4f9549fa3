"""`nasctl latency` and `nasctl lut build|validate`: measured and table-predicted latency."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import TaskID, TimeElapsedColumn

from estimators import Backend
from nasctl._app import app, command_group, guarded
from nasctl._device_options import TimingDeviceOption
from nasctl._options import (
    NumClassesOption,
    ResolutionOption,
    SpaceOption,
    WidthOption,
    format_option,
)
from nasctl._output import OutputFormat, check_output, console, emit, err_console
from nasctl._progress import progress_bar
from nasctl._resolve import resolve_model
from search_space import ArchSpec, ClassicSpec, load_space

if TYPE_CHECKING:
    from estimators import LatencyConfig, Target

lut_app = command_group(
    "lut",
    "Build and validate per-device latency lookup tables.\n\n"
    "Example: `nasctl lut build --space photos --num-classes 10 -o photos_lut.json`",
)


_Backend = Annotated[
    Backend,
    typer.Option(help="torch (eager, BatchNorm folded), onnxruntime (CPU EP) or torchscript."),
]
_Threads = Annotated[int, typer.Option("--threads", "-t", help="Intra-op threads.")]
_Rounds = Annotated[int, typer.Option(help="Interleaved rounds.")]
_Repeats = Annotated[int, typer.Option(help="Timed calls per model per round.")]


def _timing(
    backend: Backend, device: str, threads: int, rounds: int, repeats: int
) -> LatencyConfig:
    """The timing options that latency and lut build share, as one config."""
    from estimators import LatencyConfig

    return LatencyConfig(
        backend=backend, device=device, threads=threads, rounds=rounds, repeats=repeats
    )


def _timed(spec: ArchSpec | ClassicSpec, name: str, seed: int) -> ArchSpec | Target:
    """A classic network is timed as a module (measure_many builds ArchSpecs itself),
    built for the timing alone: prepared in place, not copied (VGG-16 is 138 M weights)."""
    from estimators import Target
    from search_space import build_classic

    if isinstance(spec, ClassicSpec):
        return Target(name, build_classic(spec, seed), spec.input_shape, private=True)
    return spec


@contextmanager
def _ticks(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback whose bar appears with the first tick: input refused before
    any measurement prints its one error line, not an empty bar as well."""
    bar = progress_bar(TimeElapsedColumn())
    task: TaskID | None = None

    def tick(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield tick
    finally:
        bar.stop()


@app.command("latency")
@guarded
def latency(
    archs: Annotated[
        list[str],
        typer.Argument(
            metavar="ARCH",
            help="Baseline names, classic network names (lenet5, alexnet, zfnet, vgg16, "
            "googlenet, resnet18, resnet50), arch strings or spec .json files.",
        ),
    ],
    backend: _Backend = Backend.TORCH,
    threads: _Threads = 1,
    device: TimingDeviceOption = "cpu",
    width: WidthOption = 1.0,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
    reference: Annotated[
        str | None,
        typer.Option(help="A model timed in every round; report latency relative to it."),
    ] = None,
    rounds: _Rounds = 5,
    repeats: _Repeats = 20,
    fmt: Annotated[
        OutputFormat, format_option("table (ms), json or csv (every field, in microseconds).")
    ] = OutputFormat.table,
) -> None:
    """Measure batch-1 inference latency (median of interleaved rounds, one at a time per
    machine).

    Times in milliseconds in the table, microseconds in JSON. Classic networks run at their
    papers' input unless --resolution / --num-classes say otherwise.

    Example: `nasctl latency mobilenet_v3_small mobilenet_v3_large -r 160 --reference mobilenet_v2`
    """
    from estimators import measure_many

    config = _timing(backend, device, threads, rounds, repeats)
    # A table cuts long arch strings; JSON and CSV keep them whole.
    cut = fmt is OutputFormat.table
    names = [a if len(a) <= 40 or not cut else a[:37] + "..." for a in archs]
    models = [
        _timed(resolve_model(a, width, resolution, num_classes), n, config.seed)
        for a, n in zip(archs, names, strict=True)
    ]
    ref = None
    if reference:
        ref_spec = resolve_model(reference, width, resolution, num_classes)
        ref = _timed(ref_spec, reference[:40], config.seed)
    results = measure_many(models, config, reference=ref, names=names)
    if fmt is OutputFormat.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return
    if fmt is OutputFormat.csv:  # one row per model; the host's versions stay in JSON
        emit([{k: v for k, v in r.to_dict().items() if k != "versions"} for r in results], fmt)
        return
    rows = []
    for r in results:
        row: dict[str, object] = {
            "arch": r.name,
            "median ms": r.median_us / 1000,
            "p10-p90 ms": f"{r.p10_us / 1000:.3f}-{r.p90_us / 1000:.3f}",
            "IQR/median": f"{r.iqr_ratio:.1%}",
            "n": r.count,
        }
        if r.ratio_to_reference is not None:
            row["x reference"] = r.ratio_to_reference
        rows.append(row)
    emit(
        rows,
        OutputFormat.table,
        f"Latency, {config.backend.value} on {config.device}, {threads} thread(s), batch 1",
        {"median ms": lambda v: f"{v:.3f}", "x reference": lambda v: f"{v:.3f}"},
    )
    noisy = [r.name for r in results if r.iqr_ratio > 0.10]
    if noisy:
        err_console.print(
            f"[yellow]warning:[/yellow] IQR/median above 10% for {', '.join(noisy)}: the machine "
            "is noisy; compare ratios to a --reference or measure again"
        )


@lut_app.command("build")
@guarded
def lut_build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Table file to write (JSON).")],
    space: SpaceOption = None,
    backend: _Backend = Backend.TORCH,
    threads: _Threads = 1,
    device: TimingDeviceOption = "cpu",
    num_classes: Annotated[int, typer.Option(help="Classes of the head.")] = 10,
    resolution: Annotated[
        list[int] | None,
        typer.Option("--resolution", "-r", help="Input resolution(s) instead of the space's."),
    ] = None,
    rounds: _Rounds = 5,
    repeats: _Repeats = 20,
    baselines: Annotated[
        bool,
        typer.Option(
            help="Also time the parts of the four MobileNet baselines (width 1.0, the "
            "table's resolutions), so a search with --lut draws them from this table too."
        ),
    ] = True,
) -> None:
    """Time every distinct stem, block and head of a space; an interrupted build resumes
    from the file it was writing.

    Example: `nasctl lut build --space photos --num-classes 10 -o photos_lut.json`
    """
    from estimators import build_table

    check_output(out, "--out", directory=False)
    config = _timing(backend, device, threads, rounds, repeats)
    load_space(space)  # refuse a bad space file with one line, before any progress bar
    with _ticks("measuring parts") as tick:
        table = build_table(
            out,
            space,
            config,
            num_classes=num_classes,
            resolutions=resolution,
            progress=tick,
            baselines=baselines,
        )
    console.print(
        f"{len(table.entries)} parts of space {table.space_name!r} "
        f"({config.backend.value}, {config.device}, {threads} thread(s)) -> {out}"
    )


@lut_app.command("validate")
@guarded
def lut_validate(
    lut: Annotated[Path, typer.Option("--lut", help="Table file (JSON) from `lut build`.")],
    n: Annotated[int, typer.Option("--n", help="Random architectures to measure.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the random architectures.")] = 10_000,
    passes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Measure every architecture this many times (separate passes); the median "
            "is the truth, and pass 1 vs the others shows what noise allows.",
        ),
    ] = 2,
    store: Annotated[
        bool, typer.Option(help="Write the fitted correction into the table when it helps.")
    ] = True,
    fmt: Annotated[
        OutputFormat, format_option("table, json (the full report) or csv (the table's rows).")
    ] = OutputFormat.table,
) -> None:
    """Measure N random architectures of the table's space end to end and compare them
    with the table (share within 5/10%, MAPE, Spearman, Kendall; MACs for comparison).

    Example: `nasctl lut validate --lut photos_lut.json --n 20`
    """
    from estimators import load_table, save_table, validate_table

    table = load_table(lut)
    if store:
        check_output(lut, "--lut", directory=False)
    with _ticks("measuring architectures") as tick:
        report = validate_table(table, n, seed, progress=tick, passes=passes)
    if store and report.stored:
        save_table(table, lut)
    if fmt is OutputFormat.json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    rows = []
    scored = [("sum of parts", report.raw), ("corrected (leave-one-out)", report.corrected)]
    if report.existing is not None:
        scored.append(("correction the table had", report.existing))
    scored.append(("vs plain medians (drift kept)", report.absolute))
    if report.repeatability is not None:
        scored.append(("pass 1 vs the other passes (noise ceiling)", report.repeatability))
    for label, m in scored:
        rows.append({
            "predictor": label, "within 5%": m["within_5"],
            "within 10%": m["within_10"], "MAPE %": m["mape_pct"],
            "bias %": m["bias_pct"], "Spearman": m["spearman"], "Kendall": m["kendall"],
        })  # fmt: skip
    rows.append({
        "predictor": "MACs (ranks only)", "within 5%": None, "within 10%": None,
        "MAPE %": None, "bias %": None, "Spearman": report.macs_spearman,
        "Kendall": report.macs_kendall,
    })  # fmt: skip
    if fmt is OutputFormat.csv:  # shares as fractions, as in JSON
        emit(rows, fmt)
        return
    share = {k: (lambda v: "-" if v is None else f"{v:.0%}") for k in ("within 5%", "within 10%")}
    two = {k: (lambda v: "-" if v is None else f"{v:.2f}") for k in ("MAPE %", "bias %")}
    three = {k: (lambda v: f"{v:.3f}") for k in ("Spearman", "Kendall")}
    emit(rows, OutputFormat.table, f"{lut}: {n} random architectures", {**share, **two, **three})
    c = report.correction
    what = "stored in the table" if (store and report.stored) else "not stored"
    console.print(
        f"correction ({c.method}): measured = {c.slope:.4f} x sum + {c.intercept_us:.1f} us "
        f"({what}); "
        f"prediction {report.predict_s_per_arch * 1e6:.1f} us/arch vs measurement "
        f"{report.measure_s_per_arch:.3f} s/arch ({report.speedup:,.0f}x)"
    )

"""`nasctl export`: write an architecture and its weights in a form to ship."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from nasctl._app import app, guarded, renamed
from nasctl._options import (
    STORAGE_HELP,
    NumClassesOption,
    ResolutionOption,
    RunsOption,
    WidthOption,
)
from nasctl._output import check_output, console, err_console
from nasctl._resolve import resolve_arch
from results import ExportFormat
from search_space import ArchSpec, SpecError, format_arch


@dataclass(frozen=True)
class StudyChoice:
    """Which trial of which study to export (``nasctl export --study``)."""

    name: str
    runs: Path
    storage: str | None
    trial: int | None
    best: bool
    best_under: float | None
    compare_best: bool = False
    untrained: bool = False


def _choose(
    arch: str | None,
    checkpoint: Path | None,
    width: float,
    resolution: int | None,
    num_classes: int | None,
    study: StudyChoice | None = None,
    model_format: bool = True,
) -> tuple[ArchSpec, dict[str, Any] | None, Path | None]:
    """The spec (ARCH, a study's trial or compare winner, or the checkpoint's own), its
    weights and the checkpoint they came from."""
    from results import ExportError, compare_winner, open_existing, pick_trial, read_checkpoint

    if study is not None:
        if arch is not None:
            raise SpecError("give either ARCH or --study, not both")
        if study.compare_best:
            winner = compare_winner(study.runs / study.name / "compare")
            console.print(
                f"compare winner of study {study.name!r}: {winner.name} (test top-1 "
                f"{winner.accuracy:.4f}, x V2 {winner.ratio_to_v2:.3f}, beats "
                f"{', '.join(winner.beats)}) from {winner.table}",
                highlight=False,
                soft_wrap=True,
            )
            state = read_checkpoint(winner.checkpoint, winner.spec)[0]
            return winner.spec, state, winner.checkpoint
        if checkpoint is None and model_format and not study.untrained:
            # Refused before the study is read: nothing trained is in it.
            n = study.trial if study.trial is not None else "N"
            trained = study.runs / study.name / "compare" / "models" / f"trial_{n}.pt"
            raise ExportError(
                f"a trial of study {study.name!r} without --checkpoint would be exported "
                "with random weights, not as trained: use --compare-best (compare's winner "
                f"with its trained weights), pass --checkpoint {trained} (written by `nasctl "
                "compare`), or --untrained to export random weights on purpose"
            )
        number, spec_json = pick_trial(
            open_existing(study.name, study.runs, study.storage),
            study.trial,
            study.best,
            study.best_under,
        )
        chosen = ArchSpec.from_json(spec_json)
        console.print(f"study {study.name!r}: trial {number}", highlight=False)
        if checkpoint is None:
            return chosen, None, None
        return chosen, read_checkpoint(checkpoint, chosen)[0], checkpoint
    spec = resolve_arch(arch, width, resolution, num_classes) if arch is not None else None
    if checkpoint is None:
        if spec is None:
            raise SpecError("ARCH is required unless --checkpoint records its architecture")
        return spec, None, None
    state, recorded = read_checkpoint(checkpoint, spec)
    if spec is None:
        if recorded is None:
            raise SpecError(
                f"checkpoint {str(checkpoint)!r} holds weights only; pass ARCH to say which "
                "architecture they belong to"
            )
        spec = recorded
    return spec, state, checkpoint


@app.command("export")
@guarded
def export(
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="<format>",  # the seven choices are in the help; a column of them wraps
            help="json (spec), arch (one line), py (torch-only source + NAME_weights.pt), "
            "torchscript, onnx, pt (state_dict + spec) or timm (a folder: timm_arch.json, "
            "timm_weights.pt, load_timm.py for timm's MobileNetV3/EfficientNet).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output file, or a folder (existing, or a path without a suffix) for "
            "model.onnx, model.pt, ... (by --format).",
        ),
    ],
    arch: Annotated[
        str | None,
        typer.Argument(
            metavar="ARCH",
            help="Baseline name, arch string or spec .json file (optional when the "
            "checkpoint records its spec).",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Weights: a .pt file holding a state_dict, or a dict with a 'state_dict' "
            "key (a pt export) or a 'model' key (a nasctl training checkpoint)."
        ),
    ] = None,
    width: WidthOption = 1.0,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the random init (no checkpoint) and the check input.")
    ] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset (17 or later).")] = 17,
    freeze: Annotated[
        bool, typer.Option(help="TorchScript: freeze (inline weights, fold BatchNorm).")
    ] = False,
    tolerance: Annotated[
        float, typer.Option(help="Largest max-abs logit difference accepted.")
    ] = 1e-4,
    study: Annotated[
        str | None, typer.Option(help="Export a trial of this search study instead of ARCH.")
    ] = None,
    trial: Annotated[int | None, typer.Option(help="With --study: this trial number.")] = None,
    best: Annotated[
        bool, typer.Option("--best", help="With --study: the most accurate feasible trial.")
    ] = False,
    best_under: Annotated[
        float | None,
        typer.Option(help="With --study: the most accurate feasible trial under MS latency."),
    ] = None,
    compare_best: Annotated[
        bool,
        typer.Option(
            "--compare-best",
            help="With --study: the compare winner with its trained weights (needs `nasctl "
            "compare` first): of the candidates in RUNS/STUDY/compare/compare.csv that beat "
            "at least one baseline (more accurate on test, lower x V2 in every latency run), "
            "the most accurate on val (ties: lower x V2); weights from compare/models/NAME.pt.",
        ),
    ] = False,
    untrained: Annotated[
        bool,
        typer.Option(
            "--untrained",
            help="With --trial, --best or --best-under and no --checkpoint: export random "
            "weights on purpose (refused otherwise: not a result to deploy).",
        ),
    ] = False,
    runs: RunsOption = Path("runs"),
    storage: Annotated[str | None, typer.Option(help=f"With --study: {STORAGE_HELP}")] = None,
    time_it: Annotated[
        bool,
        typer.Option(
            "--time/--no-time",
            help="Time the exported file (py, torchscript, onnx, pt) with the latency "
            "protocol and print it.",
        ),
    ] = True,
    threads: Annotated[int, typer.Option(min=1, help="Threads for the latency measurement.")] = 1,
    old_time: Annotated[
        bool | None,
        typer.Option("--latency/--no-latency", hidden=True, help="Old name of --time."),
    ] = None,
) -> None:
    """Export an architecture with its weights, then verify the written file.

    The result of a search: `nasctl export --study NAME --compare-best -f onnx -o DIR`
    (compare's winner, trained). Or ARCH, or a trial (`--study NAME` with `--trial N`,
    `--best` or `--best-under MS`, and `--checkpoint`). Model files are run back on a
    random batch; logits must match PyTorch (max abs diff). Model files record the input
    resolution, mean/std and class names from the checkpoint (ONNX metadata_props,
    TorchScript extra file nasctl.json, the pt payload, the py file's constants).

    Examples:

        nasctl export --study search --compare-best -f onnx -o ship/
        nasctl export mobilenet_v3_small -f onnx -o v3s.onnx --checkpoint v3s.pt
        nasctl export mobilenet_v3_small -f timm -o v3s_timm/ --checkpoint v3s.pt
    """
    from results import (
        check_options,
        checkpoint_preprocessing,
        export_model,
        export_path,
        exported_latency,
    )

    time_it = renamed(time_it, old_time, "--time/--no-time", "--latency/--no-latency")
    model_format = fmt not in (ExportFormat.JSON, ExportFormat.ARCH)
    choice = (
        StudyChoice(study, runs, storage, trial, best, best_under, compare_best, untrained)
        if study is not None
        else None
    )
    if choice is None and (trial is not None or best or best_under is not None or compare_best):
        raise SpecError("--trial, --best, --best-under and --compare-best need --study NAME")
    if compare_best and (trial is not None or best or best_under is not None):
        raise SpecError("give exactly one of --trial N, --best, --best-under MS or --compare-best")
    if compare_best and checkpoint is not None:
        raise SpecError("--compare-best reads compare's own checkpoint; drop --checkpoint")
    if untrained and (checkpoint is not None or compare_best):
        raise SpecError("--untrained contradicts --checkpoint and --compare-best (trained weights)")
    check_options(opset, tolerance)
    export_path(out, fmt)
    check_output(out, "--out", directory=out.is_dir() or not out.suffix)
    spec, state, source = _choose(
        arch, checkpoint, width, resolution, num_classes, choice, model_format
    )
    if state is not None and source is not None:
        from results import check_weights

        check_weights(spec, state, source)
    preprocessing = (
        checkpoint_preprocessing(source, spec) if source is not None and model_format else None
    )
    if source is not None and model_format and preprocessing is None:
        err_console.print(
            f"[yellow]warning:[/yellow] {source} records no input mean/std or class names "
            "(a bare state_dict): the export carries none, so a deployment must normalise "
            "as training did on its own",
            highlight=False,
            soft_wrap=True,
        )
    if fmt is ExportFormat.TIMM:  # what timm cannot express, before any warning
        from results import timm_arch

        timm_arch(spec)
    if state is None and model_format:  # before anything is written
        err_console.print(
            f"[yellow]warning: UNTRAINED:[/yellow] no --checkpoint: the weights are random "
            f"(seed {seed}, scaled to logits of about 1 so that the check means something), "
            "not trained; the file says so (weights: random) and is not a model to deploy",
            highlight=False,
            soft_wrap=True,
        )
    result = export_model(
        spec,
        out,
        fmt,
        state,
        seed=seed,
        opset=opset,
        freeze=freeze,
        tolerance=tolerance,
        preprocessing=preprocessing,
    )
    console.print(
        f"wrote {', '.join(str(f) for f in result.files)} ({result.format.value})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"arch: {format_arch(spec)}", highlight=False, soft_wrap=True)
    if result.max_abs_diff is None and result.format.value == "timm":
        console.print(f"checked: {result.checked_with}", highlight=False)
    elif result.max_abs_diff is None:
        console.print(f"checked: parses back to the same spec ({result.checked_with})")
    else:
        console.print(
            f"checked with {result.checked_with} on {tuple(result.input_shape)}: "
            f"max abs diff {result.max_abs_diff:.2g} vs PyTorch "
            f"(logits up to {result.max_abs_output:.3g}; tolerance {result.tolerance:.0e})",
            highlight=False,
        )
    if preprocessing is not None:
        shown = ", ".join(preprocessing.classes[:5])
        more = f", ... ({len(preprocessing.classes)})" if len(preprocessing.classes) > 5 else ""
        console.print(
            f"recorded for deployment: {preprocessing.resolution} px, mean "
            f"{_floats(preprocessing.mean)}, std {_floats(preprocessing.std)} (of x / 255, "
            f"RGB), classes {shown}{more}",
            highlight=False,
            soft_wrap=True,
        )
    if time_it and result.latency_backend is not None:
        with console.status("timing the exported file..."):
            timing = exported_latency(result, threads=threads)
        console.print(
            f"latency of the exported file ({timing.backend}, {timing.threads} thread"
            f"{'s' if timing.threads > 1 else ''}, batch 1, {timing.count} calls in "
            f"{timing.rounds} rounds): median {timing.median_us / 1000:.3f} ms, "
            f"p10-p90 {timing.p10_us / 1000:.3f}-{timing.p90_us / 1000:.3f} ms, "
            f"IQR/median {timing.iqr_ratio:.1%}",
            highlight=False,
        )
        if timing.iqr_ratio > 0.10:
            err_console.print(
                "[yellow]warning:[/yellow] IQR/median above 10%: the machine is busy; "
                "`nasctl latency` with --reference gives a drift-free ratio",
                highlight=False,
            )


def _floats(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"

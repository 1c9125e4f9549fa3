"""`nasctl results show|pareto|plot`: read any finished or running study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nasctl._app import OutputFormat, app, check_output, console, emit, guarded

if TYPE_CHECKING:
    import optuna
    import pandas as pd

results_app = typer.Typer(help="Read a study: trials, Pareto front, plot.", no_args_is_help=True)
app.add_typer(results_app, name="results")

StudyOpt = Annotated[str, typer.Option(help="Study name.")]
StorageOpt = Annotated[
    str | None,
    typer.Option(help="Optuna storage URL or .journal file (default OUT/STUDY.journal)."),
]
OutOpt = Annotated[Path, typer.Option(help="The search's output directory.")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]


_SHOW = [
    "number",
    "state",
    "feasible",
    "accuracy",
    "latency_ms",
    "macs",
    "params",
    "train_seconds",
    "rung",
    "rung_accuracy",
    "promoted_from",
    "reused_from",
    "arch",
]

#: Shown only when some trial has them (a halving search).
_OPTIONAL = {"rung", "rung_accuracy", "promoted_from"}


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    cols = [
        c for c in columns if c in frame.columns and (c not in _OPTIONAL or frame[c].notna().any())
    ]
    out = frame[cols].astype(object).where(frame[cols].notna(), None)
    return out.to_dict("records")


def _fmt_rungs(value: object) -> str:
    """``[0.41, 0.55, 0.62]`` (JSON, lowest rung first) as ``0.410 > 0.550 > 0.620``."""
    if value is None:
        return "-"
    return " > ".join(f"{a:.3f}" for a in json.loads(str(value)))


def _fmt_arch(arch: object) -> str:
    text = str(arch or "")
    return text if len(text) <= 70 else text[:67] + "..."


_FORMATS = {
    "accuracy": lambda v: "-" if v is None else f"{v:.4f}",
    "latency_ms": lambda v: "-" if v is None else f"{v:.3f}",
    "train_seconds": lambda v: "-" if v is None else f"{v:.1f}",
    "rung": lambda v: "-" if v is None else str(int(v)),
    "promoted_from": lambda v: "-" if v is None else str(int(v)),
    "reused_from": lambda v: "-" if v is None else str(int(v)),
    "rung_accuracy": _fmt_rungs,
    "macs": lambda v: "-" if v is None else f"{v / 1e6:.2f}M",
    "params": lambda v: "-" if v is None else f"{v / 1e6:.3f}M",
    "arch": _fmt_arch,
}


def write_outputs(study: optuna.Study, folder: Path, unit: str) -> None:
    """The end of a search: front table printed; trials.csv, pareto.csv, pareto.png."""
    import pandas as pd

    from results import baselines_of, front_frame, plot_front, trials_frame
    from results._report import TARGET_COLUMNS

    folder.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    frame.to_csv(folder / "trials.csv", index=False)
    front = front_frame(frame, unit)
    front.to_csv(folder / "pareto.csv", index=False)
    baselines = baselines_of(study)
    pd.DataFrame(baselines).to_csv(folder / "baselines.csv", index=False)
    plot = plot_front(
        frame,
        baselines,
        unit,
        folder / "pareto.png",
        f"study {study.study_name}: accuracy vs {TARGET_COLUMNS[unit][1]}",
    )
    _print_front(front, baselines, unit)
    console.print(f"wrote {folder / 'trials.csv'}, {folder / 'pareto.csv'}, {plot}")


def _print_front(front: pd.DataFrame, baselines: list[dict[str, Any]], unit: str) -> None:
    from results._report import TARGET_COLUMNS

    columns = ["number", "accuracy", "rung", "rung_accuracy", "latency_ms", "macs", "params"]
    rows = _rows(front, [*columns, "arch"])
    keys = list(rows[0]) if rows else ["number", "accuracy", "latency_ms", "macs", "params"]
    for b in baselines:
        row: dict[str, Any] = dict.fromkeys(keys)
        row.update({k: b.get(k) for k in ("accuracy", "latency_ms", "macs", "params")})
        note = ", trained standalone" if b.get("note") else ""
        row.update(number=b["name"], arch=f"(baseline{note})")
        rows.append(row)
    title = f"Pareto front (accuracy vs {TARGET_COLUMNS[unit][1]}) and baselines"
    if "rung" in keys:
        title += " (candidates at their highest fidelity, baselines at the full recipe)"
    if any(b.get("note") for b in baselines):
        title += "; a baseline trained standalone is not on the supernet's scale"
    if rows:
        emit(rows, OutputFormat.table, title, _FORMATS, {"rung_accuracy": "accuracy by rung"})
    else:
        console.print("no feasible trained trial yet")


@results_app.command("show")
@guarded
def show(
    study: StudyOpt = "search",
    storage: StorageOpt = None,
    out: OutOpt = Path("runs"),
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Every trial of a study with its costs, accuracy and arch string."""
    from results import open_existing, trials_frame

    s = open_existing(study, out, storage)
    emit(
        _rows(trials_frame(s), _SHOW),
        fmt,
        f"study {study}",
        _FORMATS,
        {"rung_accuracy": "accuracy by rung"},
    )


@results_app.command("pareto")
@guarded
def pareto(
    study: StudyOpt = "search",
    storage: StorageOpt = None,
    out: OutOpt = Path("runs"),
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The Pareto front (feasible trained trials) and the baselines."""
    from results import baselines_of, front_frame, open_existing, trials_frame
    from results._report import study_unit

    s = open_existing(study, out, storage)
    unit = study_unit(s)
    front = front_frame(trials_frame(s), unit)
    if fmt is OutputFormat.table:
        _print_front(front, baselines_of(s), unit)
        return
    emit(_rows(front, _SHOW), fmt)


@results_app.command("plot")
@guarded
def plot(
    study: StudyOpt = "search",
    storage: StorageOpt = None,
    out: OutOpt = Path("runs"),
    path: Annotated[Path | None, typer.Option("--path", help="PNG file to write.")] = None,
) -> None:
    """Accuracy vs the target as a PNG: front highlighted, baselines marked."""
    from results import baselines_of, open_existing, plot_front, trials_frame
    from results._report import TARGET_COLUMNS, study_unit

    s = open_existing(study, out, storage)
    unit = study_unit(s)
    target = path or out / study / "pareto.png"
    check_output(target, "--path" if path else "--out", directory=False)
    plot_front(
        trials_frame(s),
        baselines_of(s),
        unit,
        target,
        f"study {study}: accuracy vs {TARGET_COLUMNS[unit][1]}",
    )
    console.print(f"wrote {target}")

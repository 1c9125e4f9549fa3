"""`nasctl results show|pareto|plot`: read any finished or running study."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nasctl._app import command_group, guarded, renamed
from nasctl._options import (
    FormatOption,
    OldRunsOption,
    RunsOption,
    StorageOption,
    StudyOption,
)
from nasctl._output import OutputFormat, check_output, console, emit

if TYPE_CHECKING:
    import optuna
    import pandas as pd

results_app = command_group(
    "results",
    "Read a study: trials, Pareto front, plot.\n\nExample: `nasctl results pareto --study search`",
)

#: Shown only when some trial has them (a halving search).
_OPTIONAL = {"rung", "rung_accuracy", "promoted_from"}


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
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


#: The front table's headers: the live view's and the trial lines' words and units.
_FRONT_LABELS = {
    "number": "trial",
    "latency_ms": "latency (ms)",
    "latency_spread": "p10-p90 (ms)",
    "macs": "MACs (M)",
    "params": "params (M)",
    "rung_accuracy": "accuracy by rung",
}
_FRONT_FORMATS = {
    **_FORMATS,
    "macs": lambda v: "-" if v is None else f"{v / 1e6:.2f}",
    "params": lambda v: "-" if v is None else f"{v / 1e6:.3f}",
}


def front_rows(
    front: pd.DataFrame, baselines: list[dict[str, Any]], fmt: OutputFormat
) -> list[dict[str, Any]]:
    """The front, then the baselines, one row each. A table shows the p10-p90 spread in
    one column and cuts long arch strings; JSON and CSV keep raw values and full strings."""
    columns = ["number", "accuracy", "rung", "rung_accuracy", "latency_ms"]
    spread = ["latency_p10_ms", "latency_p90_ms"]
    rows = _rows(front, [*columns, *spread, "macs", "params", "arch"])
    keys = list(rows[0]) if rows else ["number", "accuracy", "latency_ms", *spread]
    keys += [k for k in ("macs", "params", "arch") if k not in keys]
    for row in rows:
        row["kind"] = "candidate"
    for b in baselines:
        row = dict.fromkeys(keys)
        row.update({k: b.get(k) for k in ("accuracy", "latency_ms", *spread, "macs", "params")})
        note = ", trained standalone" if b.get("note") else ""
        row.update(number=b["name"], kind="baseline" + note, arch=b.get("arch"))
        rows.append(row)
    if fmt is not OutputFormat.table:
        return rows
    shown = []
    for row in rows:
        p10, p90 = row.pop("latency_p10_ms", None), row.pop("latency_p90_ms", None)
        kind = row.pop("kind")
        out = {k: v for k, v in row.items() if k not in ("macs", "params", "arch")}
        if "latency_ms" in out:
            out["latency_spread"] = "-" if p10 is None or p90 is None else f"{p10:.3f}-{p90:.3f}"
        out.update(macs=row["macs"], params=row["params"])
        out["arch"] = row["arch"] if kind == "candidate" else f"({kind})"
        shown.append(out)
    return shown


def print_front(
    front: pd.DataFrame,
    baselines: list[dict[str, Any]],
    unit: str,
    fmt: OutputFormat = OutputFormat.table,
    full_at: Path | None = None,
) -> None:
    """The front and the baselines: a table (arch strings cut; ``full_at`` names the CSV
    that has them in full), or every value as JSON or CSV."""
    from results import TARGET_COLUMNS

    rows = front_rows(front, baselines, fmt)
    if fmt is not OutputFormat.table:
        emit(rows, fmt)
        return
    title = f"Pareto front (accuracy vs {TARGET_COLUMNS[unit][1]}) and baselines"
    if any("rung" in r for r in rows):
        title += " (candidates at their highest fidelity, baselines at the full recipe)"
    if any(b.get("note") for b in baselines):
        title += "; a baseline trained standalone is not on the supernet's scale"
    if not rows:
        console.print("no feasible trained trial yet")
        return
    emit(rows, OutputFormat.table, title, _FRONT_FORMATS, _FRONT_LABELS)
    cut = not front.empty and bool(front["arch"].astype(str).str.len().gt(70).any())
    if cut and full_at is not None:
        console.print(f"arch strings in full: {full_at}", highlight=False, soft_wrap=True)


#: What a command that reads a study does with it: ``read(study, runs, fmt)``.
Reader = Callable[["optuna.Study", Path, OutputFormat], None]


def _reads_a_study(name: str) -> Callable[[Reader], Reader]:
    """Register ``read`` as `nasctl results NAME` with the options every reader of a study
    takes (--study, --storage, --runs, --format); its docstring is the command's help."""

    def register(read: Reader) -> Reader:
        @results_app.command(name, help=inspect.getdoc(read))
        @guarded
        def command(
            study: StudyOption = "search",
            storage: StorageOption = None,
            runs: RunsOption = Path("runs"),
            fmt: FormatOption = OutputFormat.table,
            old_runs: OldRunsOption = None,
        ) -> None:
            from results import open_existing

            runs = renamed(runs, old_runs, "--runs", "--out")
            read(open_existing(study, runs, storage), runs, fmt)

        return read

    return register


@_reads_a_study("show")
def show(study: optuna.Study, runs: Path, fmt: OutputFormat) -> None:
    """Every trial of a study with its costs, accuracy and arch string.

    Example: `nasctl results show --study search -f csv > trials.csv`
    """
    from results import SUMMARY_COLUMNS, trials_frame

    title = f"study {study.study_name}"
    labels = {"rung_accuracy": "accuracy by rung"}
    emit(_rows(trials_frame(study), SUMMARY_COLUMNS), fmt, title, _FORMATS, labels)


@_reads_a_study("pareto")
def pareto(study: optuna.Study, runs: Path, fmt: OutputFormat) -> None:
    """The Pareto front (feasible trained trials) and the baselines.

    Example: `nasctl results pareto --study search --runs runs`
    """
    from results import SUMMARY_COLUMNS, baselines_of, front_frame, study_unit, trials_frame

    unit = study_unit(study)
    front = front_frame(trials_frame(study), unit)
    if fmt is OutputFormat.table:
        full_at = runs / study.study_name / "pareto.csv"
        print_front(front, baselines_of(study), unit, fmt, full_at)
        return
    emit(_rows(front, SUMMARY_COLUMNS), fmt)


@results_app.command("plot")
@guarded
def plot(
    study: StudyOption = "search",
    storage: StorageOption = None,
    runs: RunsOption = Path("runs"),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="PNG file to write (default RUNS/STUDY/pareto.png)."),
    ] = None,
    old_out: Annotated[
        Path | None, typer.Option("--path", hidden=True, help="Old name of --out.")
    ] = None,
) -> None:
    """Accuracy vs the target as a PNG: front highlighted, baselines marked.

    Example: `nasctl results plot --study search -o front.png`
    """
    from results import (
        baselines_of,
        open_existing,
        pareto_title,
        plot_front,
        study_unit,
        trials_frame,
    )

    out = renamed(out, old_out, "--out", "--path")
    if out is not None and out.is_dir():  # --out was the runs folder before it was --runs
        runs, out = renamed(runs, out, "--runs", "--out (a folder)"), None
    s = open_existing(study, runs, storage)
    unit = study_unit(s)
    target = out or runs / study / "pareto.png"
    check_output(target, "--out", directory=False)
    # The picture the search draws at its end: the same title, labels and budget line.
    frame, baselines = trials_frame(s), baselines_of(s)
    budget = s.user_attrs.get("nasctl", {}).get("budgets", {}).get(unit)
    plot_front(frame, baselines, unit, target, pareto_title(s, frame, baselines), budget)
    console.print(f"wrote {target}")

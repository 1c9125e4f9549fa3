"""What a search leaves in RUNS/STUDY when it ends: the trials, the front and the baselines
as CSV, the front as a picture, and the report, with the commands that come next."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from results._baselines import baselines_of
from results._report import front_frame, next_steps, pareto_title, plot_front, search_report
from results._study import trials_frame

if TYPE_CHECKING:
    import optuna

__all__ = ["SearchOutputs", "write_search_outputs"]


@dataclass(frozen=True)
class SearchOutputs:
    """The files a search wrote and the tables behind them (what the CLI prints)."""

    folder: Path
    trials_csv: Path
    pareto_csv: Path
    baselines_csv: Path
    plot: Path
    report: Path
    #: Every trial (``trials_frame``), the front (``front_frame``) and the baselines.
    frame: pd.DataFrame
    front: pd.DataFrame
    baselines: list[dict[str, Any]]
    #: The commands that follow: compare, then export (``next_steps``).
    next_steps: list[str]

    @property
    def written(self) -> list[Path]:
        """The files to name to the user: the tables, the picture and the report."""
        return [self.trials_csv, self.pareto_csv, self.plot, self.report]


def write_search_outputs(
    study: optuna.Study, out: Path, storage: str | None, unit: str, command: str
) -> SearchOutputs:
    """Write OUT/STUDY/{trials.csv, pareto.csv, baselines.csv, pareto.png, report.md}.

    ``unit`` is the target's unit as the study stores it (``TARGET_UNITS``), ``storage``
    the storage the next commands must name (None: the default journal), and ``command``
    the command line the report records. An unwritable folder raises OSError; the study
    itself is already saved.
    """
    folder = out / study.study_name
    folder.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    frame.to_csv(folder / "trials.csv", index=False)
    front = front_frame(frame, unit)
    front.to_csv(folder / "pareto.csv", index=False)
    baselines = baselines_of(study)
    pd.DataFrame(baselines).to_csv(folder / "baselines.csv", index=False)
    title = pareto_title(study, frame, baselines)
    budget = study.user_attrs.get("nasctl", {}).get("budgets", {}).get(unit)
    plot = plot_front(frame, baselines, unit, folder / "pareto.png", title, budget)
    steps = next_steps(study.study_name, out, storage)
    report = folder / "report.md"
    report.write_text(
        search_report(study, frame, front, baselines, command, steps), encoding="utf-8"
    )
    return SearchOutputs(
        folder=folder,
        trials_csv=folder / "trials.csv",
        pareto_csv=folder / "pareto.csv",
        baselines_csv=folder / "baselines.csv",
        plot=plot,
        report=report,
        frame=frame,
        front=front,
        baselines=baselines,
        next_steps=steps,
    )

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

__all__ = ["FILES", "SearchOutputs", "write_search_outputs"]


#: What a search leaves in RUNS/STUDY: the tables, the front drawn, the report.
FILES = ("trials.csv", "pareto.csv", "baselines.csv", "pareto.png", "report.md")


@dataclass(frozen=True)
class SearchOutputs:
    """What a search wrote in ``folder`` (RUNS/STUDY, one of each of ``FILES``) and the
    tables behind it: what the CLI prints."""

    folder: Path
    #: Every trial (``trials_frame``), the front (``front_frame``) and the baselines' records.
    frame: pd.DataFrame
    front: pd.DataFrame
    baselines: list[dict[str, Any]]
    #: The commands that follow: compare, then export (``next_steps``).
    next_steps: list[str]

    @property
    def written(self) -> list[Path]:
        """The files to name to the user (baselines.csv is beside them)."""
        return [self.folder / name for name in FILES if name != "baselines.csv"]


def write_search_outputs(
    study: optuna.Study, out: Path, storage: str | None, unit: str, command: str
) -> SearchOutputs:
    """Write OUT/STUDY/{trials.csv, pareto.csv, baselines.csv, pareto.png, report.md}.

    ``unit`` is the target's unit as the study stores it (``TARGET_UNITS``), ``storage``
    the storage the next commands must name (None: the default journal), and ``command``
    the command line the report records. An unwritable folder raises OSError; the study
    itself is already saved.
    """
    frame = trials_frame(study)
    front = front_frame(frame, unit)
    baselines = baselines_of(study)
    steps = next_steps(study.study_name, out, storage)
    folder = out / study.study_name
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "trials.csv", index=False)
    front.to_csv(folder / "pareto.csv", index=False)
    pd.DataFrame(baselines).to_csv(folder / "baselines.csv", index=False)
    title = pareto_title(study, frame, baselines)
    budget = study.user_attrs.get("nasctl", {}).get("budgets", {}).get(unit)
    plot_front(frame, baselines, unit, folder / "pareto.png", title, budget)
    report = search_report(study, frame, front, baselines, command, steps)
    (folder / "report.md").write_text(report, encoding="utf-8")
    return SearchOutputs(folder, frame, front, baselines, steps)

"""write_search_outputs: the files a search leaves in RUNS/STUDY, written and read back."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest

from estimators import get_recipe
from results import (
    TARGET_UNITS,
    TRIAL_COLUMNS,
    SearchConfig,
    SearchTarget,
    next_steps,
    run_search,
    trials_frame,
    write_search_outputs,
)

COMMAND = "nasctl search --target flops --trials 2"
UNIT = TARGET_UNITS[SearchTarget.flops]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, Path]:
    from tests.results.conftest import TINY_SPACE

    runs = tmp_path_factory.mktemp("outputs")
    space = runs / "tiny.toml"
    space.write_text(TINY_SPACE)
    config = SearchConfig(
        study="o",
        target=SearchTarget.flops,
        space_path=space,
        trials=2,
        population=2,
        recipe=get_recipe("search", batch_size=32),
        images_per_candidate=64,
        threads=1,
    )
    return run_search(config, runs), runs


def test_every_file_is_written_and_reads_back_as_returned(
    searched: tuple[optuna.Study, Path], tmp_path: Path
) -> None:
    study, _ = searched
    outputs = write_search_outputs(study, tmp_path, None, UNIT, COMMAND)
    folder = tmp_path / "o"
    assert outputs.folder == folder
    names = ["trials.csv", "pareto.csv", "baselines.csv", "pareto.png", "report.md"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    assert outputs.written == [folder / n for n in ("trials.csv", "pareto.csv", "pareto.png",
                                                    "report.md")]  # fmt: skip

    trials = pd.read_csv(folder / "trials.csv")
    assert list(trials.columns) == list(TRIAL_COLUMNS)
    assert trials["number"].tolist() == outputs.frame["number"].tolist() == [0, 1]
    assert trials["arch"].tolist() == outputs.frame["arch"].tolist()
    front = pd.read_csv(folder / "pareto.csv")
    assert not front.empty and front["number"].tolist() == outputs.front["number"].tolist()
    assert set(front["number"]) <= set(trials["number"])
    baselines = pd.read_csv(folder / "baselines.csv")
    assert len(outputs.baselines) == 4
    assert baselines["name"].tolist() == [b["name"] for b in outputs.baselines]
    assert (folder / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = (folder / "report.md").read_text(encoding="utf-8")
    assert COMMAND in report
    assert outputs.next_steps == next_steps("o", tmp_path)
    assert all(step in report for step in outputs.next_steps)


def test_the_next_steps_name_the_storage_given(
    searched: tuple[optuna.Study, Path], tmp_path: Path
) -> None:
    study, runs = searched
    storage = str(runs / "o.journal")
    outputs = write_search_outputs(study, tmp_path, storage, UNIT, COMMAND)
    assert all(f"--storage {storage}" in step for step in outputs.next_steps)


def test_an_unwritable_folder_raises_os_error(
    searched: tuple[optuna.Study, Path], tmp_path: Path
) -> None:
    study, _ = searched
    (tmp_path / "o").write_text("a file where the study's folder goes")
    with pytest.raises(OSError):
        write_search_outputs(study, tmp_path, None, UNIT, COMMAND)


def test_a_study_without_trials_has_the_same_columns() -> None:
    empty = optuna.create_study(directions=["maximize", "minimize"])
    frame = trials_frame(empty)
    assert frame.empty and list(frame.columns) == list(TRIAL_COLUMNS)


def test_a_plot_without_a_trained_point_is_drawn_without_a_warning(tmp_path: Path) -> None:
    """A search interrupted before its first trial finished still writes pareto.png:
    empty, and without matplotlib's 'No artists with labels' warning on the terminal."""
    from results._report import plot_front

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plot_front(pd.DataFrame(columns=TRIAL_COLUMNS), [], UNIT, tmp_path / "p.png", "t")
    assert path.read_bytes().startswith(b"\x89PNG")

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from estimators import get_recipe
from results import SearchConfig, SearchError, StudyError, run_search, trials_frame
from results._search import fidelity_recipe
from results._study import open_storage, worker_id
from search_space import ArchSpec, parse_arch

RECIPE = get_recipe("search", batch_size=32)


def _config(space: Path, **kw) -> SearchConfig:
    defaults = dict(study="t", target="flops", space_path=space, trials=3, population=2,
                    recipe=RECIPE, images_per_candidate=64, baselines=False, threads=1)  # fmt: skip
    defaults.update(kw)
    return SearchConfig(**defaults)


def test_trials_record_everything_needed_to_reproduce(tiny_space: Path, tmp_path: Path) -> None:
    study = run_search(_config(tiny_space), tmp_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for t in complete:
        a = t.user_attrs
        spec = ArchSpec.from_json(a["spec"])
        assert parse_arch(a["arch"]) == spec
        assert a["macs"] > 0 and a["params"] > 0 and a["feasible"] is True
        assert 0.0 <= a["accuracy"] <= 1.0 and a["train_seconds"] > 0
        assert a["fidelity"].startswith("search:e")
        assert t.values == [a["accuracy"], a["macs"] / 1e6]
        assert a["overhead_s"] > 0  # timed by bench/search_overhead.py, not asserted here
    assert (tmp_path / "t.journal").exists()
    assert study.user_attrs["nasctl"]["target"] == "flops"


def test_budget_refuses_before_training(tiny_space: Path, tmp_path: Path) -> None:
    # Between the cheapest and the dearest of the tiny space, so some break it.
    study = run_search(_config(tiny_space, trials=8, max_mmacs=0.16), tmp_path)
    frame = trials_frame(study)
    infeasible = frame[frame["feasible"] == False]  # noqa: E712
    assert len(infeasible) > 0 and len(frame[frame["feasible"] == True]) > 0  # noqa: E712
    assert infeasible["train_seconds"].isna().all()
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert (t.system_attrs["constraints:mmacs"] > 0) == (not t.user_attrs["feasible"])
        if not t.user_attrs["feasible"]:
            assert t.values[0] == 0.0 and "mmacs" in t.user_attrs["violations"]
            assert "accuracy" not in t.user_attrs  # never trained


def test_unreachable_budget_is_refused(tiny_space: Path, tmp_path: Path) -> None:
    with pytest.raises(SearchError, match=r"--max-flops 0.001 cannot be met"):
        run_search(_config(tiny_space, max_mmacs=0.001), tmp_path)


def test_same_architecture_is_not_trained_twice(two_arch_space: Path, tmp_path: Path) -> None:
    study = run_search(_config(two_arch_space, trials=5, sampler="random"), tmp_path)
    frame = trials_frame(study)
    trained = frame[frame["reused_from"].isna()]
    assert len(trained) == trained["arch"].nunique() <= 2
    assert frame["reused_from"].notna().sum() == 5 - len(trained)


def test_rerun_resumes_and_keeps_finished_trials(tiny_space: Path, tmp_path: Path) -> None:
    first = run_search(_config(tiny_space, trials=2), tmp_path)
    before = {t.number: t.values for t in first.trials}
    second = run_search(_config(tiny_space, trials=3), tmp_path)
    assert len(second.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert {t.number: t.values for t in second.trials if t.number in before} == before


def test_study_with_another_target_is_refused(tiny_space: Path, tmp_path: Path) -> None:
    run_search(_config(tiny_space, trials=1), tmp_path)
    with pytest.raises(StudyError, match="another target"):
        run_search(_config(tiny_space, trials=1, target="params"), tmp_path)


def test_trial_of_a_dead_worker_is_failed_and_retried(tiny_space: Path, tmp_path: Path) -> None:
    run_search(_config(tiny_space, trials=1), tmp_path)
    # A worker that died mid-trial: its trial stays RUNNING with its (now dead) pid.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    study = optuna.load_study(study_name="t", storage=open_storage(None, tmp_path, "t"))
    trial = study.ask({"width": optuna.distributions.CategoricalDistribution([0.5])})
    trial.set_user_attr("worker", worker_id().rsplit(":", 1)[0] + ":" + dead)
    assert not os.path.exists(f"/proc/{dead}")
    resumed = run_search(_config(tiny_space, trials=2), tmp_path)
    killed = resumed.trials[trial.number]
    assert killed.state is TrialState.FAIL and killed.user_attrs["fail_reason"] == "worker died"
    retried = [t for t in resumed.trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retried) == 1 and retried[0].state is TrialState.COMPLETE


def test_baselines_are_trained_once_per_study(tiny_space: Path, tmp_path: Path) -> None:
    study = run_search(_config(tiny_space, trials=1, baselines=True), tmp_path)
    records = {k: v for k, v in study.user_attrs.items() if k.startswith("baseline:")}
    assert len(records) == 4
    for record in records.values():
        assert record["resolution"] == 32 and 0 <= record["accuracy"] <= 1
        assert record["fidelity"] == study.trials[0].user_attrs["fidelity"]
    again = run_search(_config(tiny_space, trials=2, baselines=True), tmp_path)
    assert {k: v for k, v in again.user_attrs.items() if k.startswith("baseline:")} == records


@pytest.mark.parametrize(
    ("images", "size", "epochs", "subset"),
    [(6000, 1438, 4, None), (1000, 1438, 1, 1000), (64, 50000, 1, 64), (2000, 1000, 2, None)],
)
def test_fidelity_recipe(images: int, size: int, epochs: int, subset: int | None) -> None:
    recipe = fidelity_recipe(RECIPE, images, size)
    assert (recipe.epochs, recipe.train_images) == (epochs, subset)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"trials": 0}, "trials"),
        ({"timeout": -1.0}, "timeout"),
        ({"population": 1}, "population"),
        ({"max_latency_ms": -5.0}, "max_latency_ms"),
        ({"study": "a/b"}, "study"),
        ({"images_per_candidate": 0}, "images"),
    ],
)
def test_bad_config(tiny_space: Path, kw, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        _config(tiny_space, **kw)

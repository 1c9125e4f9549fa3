from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import results._search as search_module
from estimators import ImageData, TrainResult, get_recipe, load_data, load_supernet
from results import SearchConfig, SearchError, StudyError, run_search, trials_frame
from results._baselines import baseline_record
from results._search import _Runner, fidelity_recipe
from results._study import open_storage, worker_id
from search_space import ArchSpec, NasctlError, default_space_text, get_baseline, parse_arch
from tests.conftest import DIGITS_VAL_IMAGES, is_share_of
from tests.results.conftest import write_tiny_supernet

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
        assert is_share_of(a["accuracy"], DIGITS_VAL_IMAGES) and a["train_seconds"] > 0
        assert a["fidelity"].startswith("search:e")
        assert t.values == [a["accuracy"], a["macs"] / 1e6]
        assert a["overhead_s"] > 0  # timed by bench/search_overhead.py, not asserted here
    assert (tmp_path / "t.journal").exists()
    assert study.user_attrs["nasctl"]["target"] == "flops"
    # what optuna-dashboard and trials_dataframe() call the two objectives
    assert study.metric_names == ["accuracy", "mmacs"]


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
        assert record["resolution"] == 32 and is_share_of(record["accuracy"], DIGITS_VAL_IMAGES)
        assert record["fidelity"] == study.trials[0].user_attrs["fidelity"]
    again = run_search(_config(tiny_space, trials=2, baselines=True), tmp_path)
    assert {k: v for k, v in again.user_attrs.items() if k.startswith("baseline:")} == records


def test_search_says_at_which_resolution_the_baselines_are(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several resolutions in the space the baselines go to the largest unless told;
    each baseline's progress says where (no note on --baseline-resolution: it is in
    --help), and which of how many it is. Where the networks go is the point, not their
    training (test_baselines_are_trained_once_per_study trains them): each is handed to
    training at its resolution with the data at that resolution, and not trained."""
    trained: list[int] = []

    def untrained(spec: ArchSpec, data: ImageData, *args: object, **kw: object) -> TrainResult:
        assert data.resolution == spec.resolution
        trained.append(spec.resolution)
        return TrainResult(top1=0.5, top5=1.0, loss=1.0, train_loss=1.0, train_seconds=1.0,
                           images_per_second=1.0, epochs=1, per_class={})  # fmt: skip

    monkeypatch.setattr(search_module, "train_and_evaluate", untrained)
    two = tmp_path / "two_res.toml"
    text = tiny_space.read_text()
    assert "resolutions = [32]" in text
    two.write_text(text.replace("resolutions = [32]", "resolutions = [32, 40]"))
    for given, expected in ((None, 40), (32, 32)):
        trained.clear()
        events: list[tuple[str, str]] = []
        study = run_search(
            _config(two, trials=1, baselines=True, baseline_resolution=given),
            tmp_path / str(given),
            on_event=lambda e, events=events: events.append((e.kind, e.message)),
        )
        records = sorted(
            (v for k, v in study.user_attrs.items() if k.startswith("baseline:")),
            key=lambda r: r["name"],
        )
        assert {r["resolution"] for r in records} == {expected}
        assert not [m for kind, m in events if kind == "note"]
        started = [m for kind, m in events if kind == "baseline" and m.startswith("training")]
        assert started == [
            f"training baseline {r['name']} ({i}/4) at {expected}x{expected}"
            for i, r in enumerate(records, 1)
        ]
        done = [m for kind, m in events if kind == "baseline-done"]
        assert done == [r["name"] for r in records]
        assert len(trained) == 5 and trained.count(expected) >= 4  # 4 baselines, 1 trial


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


# --- --accuracy supernet ---------------------------------------------------------------


def test_supernet_scores_candidates_without_training(
    tiny_space: Path, tiny_supernet: Path, tmp_path: Path
) -> None:
    config = _config(tiny_space, trials=4, accuracy="supernet", supernet_path=tiny_supernet,
                     seed=1)  # fmt: skip
    study = run_search(config, tmp_path)
    supernet = load_supernet(tiny_supernet)
    label = study.user_attrs["nasctl"]["fidelity"]
    assert label.startswith("supernet:") and len(label) == len("supernet:") + 16
    # The supernet's own split (seed 0), whatever --seed samples and recalibrates with.
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for t in complete:
        a = t.user_attrs
        assert a["fidelity"] == label and "train_seconds" not in a
        assert a.get("reused_from") is not None or a["score_seconds"] > 0
    spec = ArchSpec.from_json(complete[0].user_attrs["spec"])
    data = load_data("digits", 32, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the search did (threads=1)
    try:
        assert complete[0].values[0] == supernet.score(spec, data, recal_batches=8, seed=1)
    finally:
        torch.set_num_threads(threads)


def test_baselines_are_scored_by_the_supernet_or_trained_standalone(tmp_path: Path) -> None:
    # MobileNetV3-Large at width 1.0 is a point of the default space: scored like the
    # candidates, by an (untrained) default-space supernet; V3-Small is not: trained.
    path = write_tiny_supernet(tmp_path / "default.pt", default_space_text(), train=False)
    config = _config(None, accuracy="supernet", supernet_path=path, recal_batches=1)
    runner = _Runner(config, tmp_path, None, lambda e: None)
    study = runner.open()
    record = baseline_record(runner, study, get_baseline("mobilenet_v3_large", 1.0, 32, 10), "v3l")
    assert record["estimator"] == "supernet" and "note" not in record
    assert record["fidelity"] == study.user_attrs["nasctl"]["fidelity"]
    assert is_share_of(record["accuracy"], DIGITS_VAL_IMAGES) and record["score_seconds"] > 0
    small = baseline_record(runner, study, get_baseline("mobilenet_v3_small", 1.0, 32, 10), "v3s")
    assert small["estimator"] == "train" and "trained standalone" in small["note"]
    assert small["fidelity"].startswith("search:e") and small["train_seconds"] > 0


def test_supernet_of_another_space_or_file_is_refused(
    tiny_space: Path, two_arch_space: Path, tiny_supernet: Path, tmp_path: Path
) -> None:
    config = _config(two_arch_space, accuracy="supernet", supernet_path=tiny_supernet)
    with pytest.raises(NasctlError, match="differs from the search's space"):
        run_search(config, tmp_path)
    run_search(_config(tiny_space, trials=1, accuracy="supernet", supernet_path=tiny_supernet),
               tmp_path)  # fmt: skip
    other = write_tiny_supernet(tmp_path / "other.pt", train=False)
    with pytest.raises(StudyError, match="another fidelity"):
        run_search(_config(tiny_space, trials=1, accuracy="supernet", supernet_path=other),
                   tmp_path)  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"accuracy": "supernet"}, "accuracy 'supernet' needs supernet_path"),
        ({"supernet_path": Path("s.pt")}, "supernet_path is only read with accuracy 'supernet'"),
        ({"accuracy": "halving", "supernet_path": Path("s.pt")}, "only read with accuracy"),
    ],
)
def test_bad_supernet_config(tiny_space: Path, kw, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        _config(tiny_space, **kw)

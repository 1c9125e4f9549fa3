"""Successive halving on Pareto rank: the promotion rule as pure functions, then tiny
halving searches (rung fidelities, nothing trained twice, resume after Ctrl-C)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from estimators import get_recipe
from results import (
    SearchConfig,
    SearchError,
    StudyError,
    front_frame,
    open_existing,
    run_search,
    trials_frame,
)
from results._halving import (
    candidates_done,
    due_promotions,
    halving_rungs,
    promotion_order,
    rung_fractions,
    to_promote,
)
from results._search_config import Event
from results._study import worker_id
from search_space import NasctlError

NAN = math.nan
RECIPE = get_recipe("search", batch_size=32)


# --- rungs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eta", "low", "expected"),
    [
        (3, 1 / 9, [1 / 9, 1 / 3, 1.0]),
        (3, 0.1, [1 / 9, 1 / 3, 1.0]),  # 1/27 would be below the floor
        (3, 1 / 3, [1 / 3, 1.0]),
        (2, 0.25, [0.25, 0.5, 1.0]),
        (2, 0.2, [0.25, 0.5, 1.0]),
        (4, 1 / 64, [1 / 64, 1 / 16, 1 / 4, 1.0]),
    ],
)
def test_rung_fractions(eta: int, low: float, expected: list[float]) -> None:
    assert rung_fractions(eta, low) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("eta", "low", "message"),
    [(1, 0.5, "eta must be an integer >= 2"), (3, 0.5, r"min_fidelity must be in \(0, 1/eta\]"),
     (2, 0.0, "min_fidelity must be in"), (2, float("nan"), "min_fidelity must be in")],
)  # fmt: skip
def test_rung_fractions_refuses_what_has_no_rungs(eta: int, low: float, message: str) -> None:
    with pytest.raises(NasctlError, match=message):
        rung_fractions(eta, low)


@pytest.mark.parametrize(
    ("images", "train_size", "eta", "low", "expected"),
    [
        # Digits at 32x32 (1,438 training images), the default 6,000 images per candidate.
        (6000, 1438, 3, 1 / 9, ["e1x667", "e1", "e4"]),
        (6000, 1438, 2, 1 / 4, ["e1", "e2", "e4"]),
        # CIFAR-10: every rung a seeded subset of one epoch.
        (6000, 50000, 3, 1 / 9, ["e1x667", "e1x2000", "e1x6000"]),
        # Budgets of a split or more round to whole epochs: 1,500 -> 1, 3,000 -> 2.
        (3000, 1438, 2, 1 / 4, ["e1x750", "e1", "e2"]),
        # Budgets that round to the same recipe are one rung (1 and 2 images: both 2).
        (8, 1438, 2, 1 / 8, ["e1x2", "e1x4", "e1x8"]),
        # --epochs 3 (no --images): the full recipe, then shares of 3 epochs.
        (None, 1438, 3, 1 / 9, ["e1x479", "e1", "e3"]),
    ],
)
def test_halving_rungs(images, train_size, eta, low, expected) -> None:
    recipe = get_recipe("search", epochs=3 if images is None else None, batch_size=32)
    rungs = halving_rungs(recipe, images, train_size, eta, low, "search")
    assert [r.label for r in rungs] == [f"search:{e}:b32" for e in expected]
    assert [r.index for r in rungs] == list(range(len(rungs)))
    assert all(a.images < b.images for a, b in itertools.pairwise(rungs))


# --- the promotion rule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "eta", "expected"),
    [
        # (accuracy, cost). One front of four: extremes first (by index), then crowding.
        ([[0.9, 10], [0.85, 8], [0.6, 2], [0.5, 1]], 2, [0, 3]),
        ([[0.9, 10], [0.85, 8], [0.6, 2], [0.5, 1]], 1, [0, 3, 2, 1]),
        # Rank before crowding: (0.7, 9) and (0.4, 6) are dominated, so come last.
        ([[0.7, 9], [0.9, 10], [0.4, 6], [0.8, 5], [0.5, 1]], 1, [1, 4, 3, 0, 2]),
        ([[0.7, 9], [0.9, 10], [0.4, 6], [0.8, 5], [0.5, 1]], 3, [1]),
        ([[0.7, 9], [0.9, 10], [0.4, 6], [0.8, 5], [0.5, 1]], 2, [1, 4]),
        # floor(n / eta): nothing until a rung holds eta results.
        ([[0.9, 10], [0.5, 1]], 3, []),
        ([[0.9, 10], [0.5, 1], [0.4, 2]], 3, [0]),
        # Ties: equal points share rank and crowding; the earlier trial goes first.
        ([[0.8, 5], [0.8, 5], [0.8, 5]], 3, [0]),
        ([[0.8, 5], [0.8, 5], [0.8, 5]], 1, [0, 1, 2]),
        # Same accuracy, higher cost: dominated.
        ([[0.8, 6], [0.8, 5], [0.3, 1]], 2, [1]),
        # NaN / infinite values take no part (and do not count towards n).
        ([[NAN, 1], [0.9, 10], [0.5, math.inf], [0.8, 5]], 2, [1]),
        ([], 2, []),
    ],
)
def test_to_promote(values: list[list[float]], eta: int, expected: list[int]) -> None:
    assert to_promote(values, eta).tolist() == expected


def test_promotion_order_is_a_permutation_of_the_finite_points() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((40, 2))
    values[[3, 7], 0] = NAN
    order = promotion_order(values)
    assert sorted(order.tolist()) == sorted(set(range(40)) - {3, 7})


def _trial(number: int, acc: float, cost: float, arch: str, rung: int = 0, **attrs) -> FrozenTrial:
    state = attrs.pop("state", TrialState.COMPLETE)
    t = create_trial(
        state=state,
        values=[acc, cost] if state is TrialState.COMPLETE else None,
        params={"x": number},
        distributions={"x": CategoricalDistribution(list(range(100)))},
        user_attrs={"arch": arch, "rung": rung, "feasible": True, **attrs},
    )
    t.number = number
    return t


def test_due_promotions_from_the_trials() -> None:
    trials = [
        _trial(0, 0.9, 10, "a"),
        _trial(1, 0.5, 1, "b"),
        _trial(2, 0.4, 6, "c"),
        _trial(3, 0.3, 9, "d"),
        _trial(4, 0.3, 9, "d", reused_from=3),  # a duplicate is not a second result
        _trial(5, 0.0, 0.5, "e", feasible=False),  # never trained: takes no part
    ]
    due = due_promotions(trials, rungs=3, eta=2)
    assert [(p.source, p.arch, p.rung, p.params) for p in due] == [
        (0, "a", 1, {"x": 0}),
        (1, "b", 1, {"x": 1}),
    ]
    # Taken once a trial of that arch exists at the next rung, in any state.
    waiting = _trial(6, NAN, NAN, "a", rung=1, promoted_from=0, state=TrialState.WAITING)
    failed = _trial(7, NAN, NAN, "b", rung=1, promoted_from=1, state=TrialState.FAIL)
    assert due_promotions([*trials, waiting, failed], rungs=3, eta=2) == []
    # The highest rung first; the top rung promotes nothing.
    up = [_trial(6, 0.95, 10, "a", rung=1, promoted_from=0),
          _trial(7, 0.6, 1, "b", rung=1, promoted_from=1),
          _trial(8, 0.97, 10, "a", rung=2, promoted_from=6),
          _trial(9, 0.7, 1, "b", rung=2, promoted_from=7)]  # fmt: skip
    assert due_promotions([*trials, *up[:2]], rungs=3, eta=2)[0].rung == 2
    assert due_promotions([*trials, *up], rungs=3, eta=2) == []
    assert candidates_done([*trials, *up]) == 6


# --- tiny halving searches --------------------------------------------------------------


def _config(space: Path, **kw: Any) -> SearchConfig:
    # 32, 64 and 128 training images per rung, batches of 32: a trial is a few steps.
    defaults = dict(study="h", target="flops", space_path=space, trials=6, population=2,
                    recipe=RECIPE, images_per_candidate=128, baselines=False, threads=1,
                    accuracy="halving", eta=2, min_fidelity=0.25)  # fmt: skip
    defaults.update(kw)
    return SearchConfig(**defaults)


def _check_halving(study: optuna.Study, candidates: int) -> None:
    """Every rung recorded, promotions consistent, nothing trained twice at a fidelity,
    and no promotion left due."""
    labels = study.user_attrs["nasctl"]["fidelity"].split(":", 2)[2].split(",")
    trials = study.get_trials()
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    trained = Counter(
        (t.user_attrs["arch"], t.user_attrs["fidelity"])
        for t in complete
        if t.user_attrs.get("reused_from") is None and t.user_attrs["feasible"]
    )
    assert trained and max(trained.values()) == 1, "an architecture was trained twice"
    for t in complete:
        a = t.user_attrs
        if not a["feasible"]:
            assert a["rung"] == 0 and "accuracy" not in a  # refused before training
            continue
        assert a["fidelity"] == labels[a["rung"]] and t.values[0] == a["accuracy"]
        assert len(a["rung_accuracy"]) == a["rung"] + 1 and a["rung_accuracy"][-1] == a["accuracy"]
        if a["rung"] > 0:
            parent = study.trials[a["promoted_from"]]
            assert parent.user_attrs["rung"] == a["rung"] - 1
            assert parent.user_attrs["arch"] == a["arch"] and parent.params == t.params
            assert a["rung_accuracy"][:-1] == parent.user_attrs["rung_accuracy"]
            assert a["macs"] == parent.user_attrs["macs"]  # costs copied, not re-measured
        else:
            assert "promoted_from" not in a
    assert candidates_done(trials) >= candidates
    assert due_promotions(trials, len(labels), eta=2) == []


def test_halving_search_records_every_rung(tiny_space: Path, tmp_path: Path) -> None:
    study = run_search(_config(tiny_space), tmp_path)
    assert study.user_attrs["nasctl"]["fidelity"] == (
        "halving:eta2:search:e1x32:b32,search:e1x64:b32,search:e1x128:b32"
    )
    _check_halving(study, 6)
    rungs = Counter(t.user_attrs["rung"] for t in study.trials)
    assert rungs[0] == 6 and rungs[1] >= 2 and rungs[2] >= 1
    # The front: one row per architecture, at its highest rung.
    frame = trials_frame(study)
    front = front_frame(frame, "mmacs")
    assert front["arch"].is_unique
    top = frame.groupby("arch")["rung"].max()
    assert all(row.rung == top[row.arch] for row in front.itertuples())


def test_resume_continues_the_rungs_without_retraining(tiny_space: Path, tmp_path: Path) -> None:
    def stop_in_rung_1(event: Event) -> None:  # Ctrl-C while a promotion trains
        if event.kind == "trial-start" and "rung 1" in event.message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(_config(tiny_space), tmp_path, on_event=stop_in_rung_1)
    cut = open_existing("h", tmp_path, None).get_trials()
    interrupted = [t for t in cut if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["rung"] == 1
    done = {t.number: t.values for t in cut if t.state is TrialState.COMPLETE}

    study = run_search(_config(tiny_space), tmp_path)
    _check_halving(study, 6)
    assert {n: study.trials[n].values for n in done} == done
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retried) == 1 and retried[0].state is TrialState.COMPLETE
    assert retried[0].user_attrs["rung"] == 1
    assert retried[0].user_attrs["promoted_from"] == interrupted[0].user_attrs["promoted_from"]
    # A third run finds nothing to do: no new trial.
    again = run_search(_config(tiny_space), tmp_path)
    assert len(again.trials) == len(study.trials)


def test_infeasible_candidates_are_never_trained_nor_promoted(
    tiny_space: Path, tmp_path: Path
) -> None:
    study = run_search(_config(tiny_space, trials=8, max_mmacs=0.16), tmp_path)
    frame = trials_frame(study)
    infeasible = frame[frame["feasible"] == False]  # noqa: E712
    assert len(infeasible) > 0
    assert infeasible["train_seconds"].isna().all() and (infeasible["rung"] == 0).all()
    promoted = frame[frame["promoted_from"].notna()]
    assert promoted["feasible"].all()
    _check_halving(study, 8)


def test_a_halving_study_is_not_resumed_with_another_eta(tiny_space: Path, tmp_path: Path) -> None:
    run_search(_config(tiny_space, trials=2), tmp_path)
    with pytest.raises(StudyError, match="another fidelity"):
        run_search(_config(tiny_space, trials=2, eta=3, min_fidelity=1 / 3), tmp_path)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"eta": 1}, "eta must be an integer >= 2"),
        ({"min_fidelity": 0.0}, "min_fidelity must be a fraction in"),
        ({"min_fidelity": 1.0}, "min_fidelity must be a fraction in"),
        ({"min_fidelity": 0.75}, "it must be at most 1/eta = 0.5"),
        ({"accuracy": "guess"}, "accuracy must be one of train, halving"),
    ],
)
def test_bad_halving_config(tiny_space: Path, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(SearchError, match=message):
        _config(tiny_space, **kw)


def test_a_lowest_rung_under_one_batch_is_refused(tiny_space: Path, tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="lowest rung trains on 16 images, less than one batch"):
        run_search(_config(tiny_space, min_fidelity=0.125), tmp_path)


def test_a_promotion_left_running_by_a_dead_worker_is_retried_at_its_rung(
    tiny_space: Path, tmp_path: Path
) -> None:
    study = run_search(_config(tiny_space, trials=4), tmp_path)
    source = next(t for t in study.trials if t.user_attrs.get("rung") == 1)
    # A worker that died as it took a rung-2 promotion of it (before sampling: no params
    # yet, only the enqueued ones): the trial stays RUNNING.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    study.enqueue_trial(source.params, user_attrs={"rung": 2, "promoted_from": source.number,
                                                   "arch": source.user_attrs["arch"]})  # fmt: skip
    trial = study.ask()
    trial.set_user_attr("worker", worker_id().rsplit(":", 1)[0] + ":" + dead)
    resumed = run_search(_config(tiny_space, trials=4), tmp_path)
    killed = resumed.trials[trial.number]
    assert killed.state is TrialState.FAIL and killed.user_attrs["fail_reason"] == "worker died"
    retried = [t for t in resumed.trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retried) == 1 and retried[0].state is TrialState.COMPLETE
    assert retried[0].user_attrs["rung"] == 2
    assert retried[0].user_attrs["promoted_from"] == source.number
    assert retried[0].user_attrs["arch"] == source.user_attrs["arch"]
    _check_halving(resumed, 4)

"""--max-latency fastest-baseline-N%: one worker times the baselines, the others (and a
resumed search) take its figure from the study."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import results._claims as claims
from estimators import get_recipe
from results import SearchConfig
from results._search import _Runner
from results._study import worker_id

RECIPE = get_recipe("search", batch_size=32)


@pytest.fixture(autouse=True)
def _quick_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims, "POLL_S", 0.01)
    monkeypatch.setattr(claims, "SETTLE_S", 0.01)


def _runner(space: Path, root: Path, events: list[Any]) -> _Runner:
    config = SearchConfig(study="b", target="flops", space_path=space, trials=1, population=2,
                          recipe=RECIPE, images_per_candidate=64, baselines=False, threads=1,
                          sampler="random", max_latency_under_fastest_pct=5.0)  # fmt: skip
    runner = _Runner(config, root, None, events.append)
    return runner


def _timed(names: list[str]) -> dict[str, dict[str, float]]:
    return {n: {"latency_ms": 2.0 + i} for i, n in enumerate(names)}


def test_a_live_workers_claim_is_waited_for_and_its_budget_used(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Any] = []
    runner = _runner(tiny_space, tmp_path, events)
    study = runner.open()
    other = f"{worker_id().rpartition(':')[0]}:{os.getppid()}"  # a live process
    study.set_user_attr(f"worker:{other}", {"started": 0.0, "seed": 1})
    study.set_user_attr("latency-budget-claim", other)
    looks = []

    def sleep(seconds: float) -> None:  # the other worker stores its figure meanwhile
        looks.append(seconds)
        meta = dict(study.user_attrs["nasctl"])
        meta["latency_budget"] = {
            "percent_under": 5.0,
            "latency_ms": 9.5,
            "fastest": "x",
            "fastest_ms": 10.0,
            "resolution": 32,
            "source": "measured",
        }
        study.set_user_attr("nasctl", meta)

    monkeypatch.setattr("results._pricing.time.sleep", sleep)
    monkeypatch.setattr(runner.pricing, "time_baselines", lambda names: pytest.fail("timed again"))
    monkeypatch.setattr(runner.pricing, "check_latency_reachable", lambda: None)
    runner.pricing.resolve_latency_budget(study)
    assert looks and runner.config.max_latency_ms == 9.5
    assert any("waiting for" in e.message for e in events)


def test_a_dead_workers_claim_is_taken_over(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner(tiny_space, tmp_path, [])
    study = runner.open()
    study.set_user_attr("latency-budget-claim", f"{worker_id().rpartition(':')[0]}:999999999")
    monkeypatch.setattr(runner.pricing, "time_baselines", _timed)
    monkeypatch.setattr(runner.pricing, "check_latency_reachable", lambda: None)
    runner.pricing.resolve_latency_budget(study)
    assert study.user_attrs["latency-budget-claim"] == worker_id()
    chosen = study.user_attrs["nasctl"]["latency_budget"]
    assert chosen["fastest"] == "mobilenet_v1" and chosen["latency_ms"] == pytest.approx(1.9)
    assert runner.config.max_latency_ms == pytest.approx(1.9)
    # Resumed (a new runner on the same study): the stored figure, not a new timing.
    again = _runner(tiny_space, tmp_path, [])
    monkeypatch.setattr(again.pricing, "time_baselines", lambda names: pytest.fail("timed again"))
    monkeypatch.setattr(again.pricing, "check_latency_reachable", lambda: None)
    again.pricing.resolve_latency_budget(again.open())
    assert again.config.max_latency_ms == pytest.approx(1.9)

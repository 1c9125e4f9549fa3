"""Fixtures and checks every test package may use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from estimators import LatencyConfig

#: The digits validation split every test here scores on (split seed 0 or any other: the
#: split's sizes do not depend on its seed).
DIGITS_VAL_IMAGES = 287


def is_share_of(value: float, total: int) -> bool:
    """Whether ``value`` is k / ``total`` for an integer 0 <= k <= total, exactly: what a
    top-1 over ``total`` images (or a share of ``total`` rows) is. A share of another
    split, a mean of batch means, a loss or a value out of range is not."""
    k = round(value * total)
    return 0 <= k <= total and value == k / total


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker runs one test at a time on its share of the cores:
    one intra-op torch thread per worker (a test that wants more sets its own), where
    every worker taking all the cores would only contend."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def cli_built_once() -> Iterator[None]:
    """typer's CliRunner.invoke builds the click command from the Typer app on every call:
    about 0.13 s for nasctl's 18 commands (their signatures and type hints, read again each
    time). The command is the same each time, so it is built once per app here (the
    716-case fuzz table: 91 s on one process before, 19 s after); what an invocation does
    with it is typer's."""
    import typer.main
    import typer.testing

    built: dict[tuple[int, str | None], tuple[object, object]] = {}
    build = typer.main.get_command

    def once(app: typer.Typer) -> object:
        # The build reads one switch besides the app: whether --show/--install-completion
        # detect the shell (the completion tests turn that off), so it is part of the key.
        key = (id(app), os.environ.get("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"))
        if key not in built:
            built[key] = (app, build(app))  # the app kept: its id is not reused
        return built[key][1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", once)
        yield


def quick_baseline_latency() -> LatencyConfig:
    """The baselines' interleaved protocol cut to a few calls: the real one, 5 rounds x 20
    calls with MobileNetV2 in every round, took 6.7 s for three baselines at 32x32 on one
    thread here, this one 1.3 s."""
    from estimators import LatencyConfig

    return LatencyConfig(rounds=2, repeats=3, min_warmup=2, max_warmup=4)


@pytest.fixture
def quick_baseline_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A search's baselines timed with quick_baseline_latency(): for a test that needs
    baseline latencies to exist, not to be accurate."""
    import results._pricing

    monkeypatch.setattr(results._pricing, "BASELINE_LATENCY", quick_baseline_latency())


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for a module whose forwards are small: on 2 shared cores
    more threads only contend (a module of 50 tiny forwards ran 7x faster with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Fixtures every test package may use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker runs one test at a time on its share of the cores:
    one intra-op torch thread per worker (a test that wants more sets its own), where
    every worker taking all the cores would only contend."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for a module whose forwards are small: on 2 shared cores
    more threads only contend (a module of 50 tiny forwards ran 7x faster with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

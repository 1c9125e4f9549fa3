"""Fixtures every test package may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for a module whose forwards are small: on 2 shared cores
    more threads only contend (a module of 50 tiny forwards ran 7x faster with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

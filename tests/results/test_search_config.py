"""SearchConfig refuses bad options when it is made, before any storage is opened."""

from __future__ import annotations

from typing import Any

import pytest

from results import SearchConfig
from search_space import NasctlError, max_threads


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threads": 0}, "threads must be an integer from 1 to"),
        ({"threads": max_threads() + 1}, "threads must be an integer from 1 to"),
        ({"timeout": float("nan")}, "timeout must be positive seconds, got nan"),
        ({"timeout": float("inf")}, "timeout must be positive seconds, got inf"),
        ({"timeout": -1.0}, "timeout must be positive seconds"),
        ({"baseline_resolution": 0}, "baseline_resolution must be a positive multiple of 8"),
        ({"baseline_resolution": 100_000}, "baseline_resolution must be a positive multiple"),
        ({"max_latency_ms": float("nan")}, "max_latency_ms must be a positive number"),
        ({"min_fidelity": float("nan"), "accuracy": "halving"}, "min_fidelity must be"),
        # What `nasctl search` refuses as flags, the API refuses as parameters.
        ({"eta": 4}, "eta only applies to accuracy 'halving', got accuracy 'train'"),
        ({"eta": 2, "accuracy": "supernet", "supernet_path": "s.pt"}, "eta only applies"),
        ({"min_fidelity": 0.1}, "min_fidelity only applies to accuracy 'halving'"),
        ({"accuracy": "supernet"}, "accuracy 'supernet' needs supernet_path"),
        ({"supernet_path": "s.pt"}, "supernet_path is only read with accuracy 'supernet'"),
    ],
)
def test_bad_options_are_refused_at_construction(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(NasctlError, match=message):
        SearchConfig(study="s", **changes)


def test_halving_takes_eta_and_min_fidelity() -> None:
    config = SearchConfig(study="s", accuracy="halving", eta=4, min_fidelity=0.1)
    assert (config.eta, config.lowest_fidelity) == (4, 0.1)


def test_a_good_config_is_made() -> None:
    config = SearchConfig(study="s", threads=max_threads(), timeout=60.0, baseline_resolution=32)
    assert (config.threads, config.timeout, config.baseline_resolution) == (max_threads(), 60, 32)

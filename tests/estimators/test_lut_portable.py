"""A lookup table is built on the device and used elsewhere: loading it never asks
whether this host could measure with its protocol; measuring with it does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from estimators import (
    LatencyError,
    build_table,
    load_table,
    measure,
    predict,
    validate_table,
)
from estimators._lut import table_space
from search_space import max_threads
from tests.estimators.test_lut import FAST, TINY_SPACE


@pytest.fixture(autouse=True)
def cpu_only_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This host, as one without CUDA (also where the test runs on a GPU machine)."""
    monkeypatch.setenv("NASCTL_LATENCY_LOCK", str(tmp_path / "latency.lock"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def cpu_table(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("lut")
    (folder / "tiny.toml").write_text(TINY_SPACE)
    build_table(folder / "lut.json", folder / "tiny.toml", FAST, num_classes=10)
    return json.loads((folder / "lut.json").read_text())


@pytest.mark.parametrize(
    "protocol",
    [{"device": "cuda"}, {"device": "cuda:1"}, {"threads": 4 * max_threads()}],
    ids=["cuda", "cuda:1", "more threads than this host allows"],
)
def test_a_table_built_on_another_machine_loads_and_predicts_here(
    cpu_table: dict, protocol: dict, tmp_path: Path
) -> None:
    data = json.loads(json.dumps(cpu_table))
    data["protocol"].update(protocol)
    data["host"]["cuda"] = "NVIDIA H200"
    path = tmp_path / "device.json"
    path.write_text(json.dumps(data))
    table = load_table(path)
    for name, value in protocol.items():
        assert getattr(table.config, name) == value
    here = tmp_path / "here.json"
    here.write_text(json.dumps(cpu_table))
    spec = table_space(table).random_spec(0, 10)
    assert predict(spec, table) == predict(spec, load_table(here))
    # Measuring with that protocol is what this host cannot do: one clear sentence.
    what = "no CUDA device" if "device" in protocol else "threads must be at most"
    with pytest.raises(LatencyError, match=what):
        measure(spec, table.config)
    with pytest.raises(LatencyError, match=what):
        validate_table(table, n=3)

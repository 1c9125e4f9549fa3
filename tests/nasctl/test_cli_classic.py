"""Classic reference networks in `nasctl table` and `nasctl latency`, and `--memory`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from estimators import memory
from nasctl.cli import app
from search_space import CLASSICS, REFERENCE_COUNTS, classic_names, get_baseline

runner = CliRunner()
FAST = ["--rounds", "1", "--repeats", "3"]


def run(*args: str):
    return runner.invoke(app, list(args))


def test_table_classics_rows_are_exact() -> None:
    result = run("table", "--classics", "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == classic_names()
    assert {r["name"]: r["params"] for r in rows} == {n: CLASSICS[n].params for n in CLASSICS}
    assert all(r["ref"] == "exact" and r["width"] is None for r in rows)
    sizes = {r["name"]: (r["resolution"], r["classes"]) for r in rows}
    assert sizes["lenet5"] == (32, 10) and sizes["alexnet"] == (227, 1000)
    assert sizes["vgg16"] == (224, 1000)


def test_table_mixes_baselines_and_classics_with_memory() -> None:
    result = run("table", "mobilenet_v2", "vgg16", "--memory", "-f", "json")
    assert result.exit_code == 0, result.output
    v2, vgg = json.loads(result.stdout)
    assert (v2["params"], v2["macs"]) == REFERENCE_COUNTS["mobilenet_v2"] and v2["ref"] == "exact"
    assert vgg["weights_bytes"] == 4 * 138_357_544
    assert vgg["memory_bytes"] == vgg["weights_bytes"] + vgg["activations_bytes"]
    assert v2["activations_bytes"] == memory(get_baseline("mobilenet_v2")).activations_bytes


def test_table_rich_output_names_the_variants() -> None:
    result = run("table", "googlenet", "alexnet", "--memory")
    assert result.exit_code == 0, result.output
    assert "peak activations (MB)" in result.stdout and "memory (MB)" in result.stdout
    assert "Classic reference networks" in result.stdout
    assert "no auxiliary classifiers" in result.stdout and "two-group" in result.stdout


def test_table_classic_at_other_inputs_and_layers() -> None:
    result = run("table", "resnet18", "-r", "64", "-r", "128", "--num-classes", "10", "-f", "csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith("resnet18,,64,10,")
    assert lines[1].endswith(",")  # no reference count away from the default input
    layers = run("table", "alexnet", "--per-layer")
    assert layers.exit_code == 0, layers.output
    assert "fc6" in layers.stdout and "conv5" in layers.stdout
    assert "By operation" in layers.stdout


@pytest.fixture
def private_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASCTL_LATENCY_LOCK", str(tmp_path / "latency.lock"))


@pytest.mark.usefixtures("private_lock")
def test_latency_of_classics_next_to_a_baseline() -> None:
    args = ["latency", "lenet5", "resnet18", "-r", "32", "--num-classes", "10"]
    result = run(*args, "--reference", "lenet5", *FAST, "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["lenet5", "resnet18"]
    assert rows[0]["count"] >= 3 and rows[1]["median_us"] > 0
    assert rows[0]["reference"] == "lenet5" and rows[1]["ratio_to_reference"] > 0
    mixed = run("latency", "lenet5", "mobilenet_v3_small", "-w", "0.5", "-r", "32", *FAST)
    assert mixed.exit_code == 0, mixed.output
    assert "lenet5" in mixed.stdout and "mobilenet_v3_small" in mixed.stdout

"""`nasctl latency` and `nasctl lut`, driven through typer's CliRunner."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from estimators import load_table
from nasctl.cli import app
from tests.conftest import is_share_of

TINY = "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e3_c16_se0.25_hs,ir_k5_s1_e3_c16_re,head_c32_hs_d0"
FAST = ["--rounds", "1", "--repeats", "3"]
TINY_SPACE = """
name = "tiny"
widths = [0.5]
resolutions = [32]
[stem]
channels = 8
[head]
conv_channels = 32
[[stages]]
channels = 16
stride = 2
depth = [1, 2]
kernel = [3, 5]
expansion = [3]
"""

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASCTL_LATENCY_LOCK", str(tmp_path / "latency.lock"))


def test_latency_json() -> None:
    result = runner.invoke(app, ["latency", TINY, TINY, *FAST, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    # Equal windows: the model that warmed up slower gets exactly the 3 repeats, the other
    # as many as fill the same time (two copies of one net differ only by noise).
    assert len(rows) == 2 and min(r["count"] for r in rows) == 3
    assert rows[0]["backend"] == "torch"
    assert rows[0]["median_us"] > 0 and "iqr_ratio" in rows[0]


def test_latency_csv() -> None:
    result = runner.invoke(app, ["latency", TINY, *FAST, "-f", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1 and rows[0]["name"] == TINY and float(rows[0]["median_us"]) > 0
    assert float(rows[0]["p10_us"]) <= float(rows[0]["p90_us"]) and "versions" not in rows[0]


def test_latency_table_with_reference_and_baseline() -> None:
    args = ["latency", "mobilenet_v3_small", "-w", "0.5", "-r", "32", "--num-classes", "10"]
    result = runner.invoke(app, [*args, "--reference", TINY, "--threads", "1", *FAST])
    assert result.exit_code == 0, result.output
    for column in ("median ms", "p10-p90 ms", "IQR/median", "x reference"):
        assert column in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["latency", "no_such_net"], "is not a baseline"),
        (["latency", TINY, "--threads", "0"], "--threads must be an integer from 1 to"),
        (["latency", TINY, "--device", "tpu"], "device must be 'cpu' or 'cuda"),
        (["latency", TINY, "--backend", "tflite"], "tflite"),
        (["latency", TINY, "--rounds", "0"], "rounds must be a positive integer"),
        (["lut", "validate", "--lut", "missing.json"], "cannot read table"),
        (["lut", "build", "--out", "x.json", "--num-classes", "0"], "--num-classes must be"),
        (["lut", "build", "--out", "x.json", "--space", "nope.toml"], "cannot read space file"),
    ],
)
def test_errors_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_lut_build_resume_and_validate(tmp_path: Path) -> None:
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "lut.json"
    build = ["lut", "build", "--space", str(space), "--out", str(out), *FAST]
    result = runner.invoke(app, build)
    assert result.exit_code == 0, result.output
    table = load_table(out)
    assert table.complete and table.num_classes == 10

    again = runner.invoke(app, build)  # complete: nothing left to measure
    assert again.exit_code == 0 and load_table(out).entries == table.entries

    result = runner.invoke(
        app, ["lut", "validate", "--lut", str(out), "--n", "3", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["n"] == 3 and len(report["rows"]) == 3 and report["passes"] == 2
    assert set(report["repeatability"]) >= {"within_10", "spearman"}
    # Checked now: the next validate also stores (or not) by its own figures.
    assert (load_table(out).correction is not None) == report["stored"]
    shown = runner.invoke(app, ["lut", "validate", "--lut", str(out), "--n", "3", "--passes", "3"])
    assert shown.exit_code == 0, shown.output
    assert "noise ceiling" in shown.stdout
    as_csv = runner.invoke(app, ["lut", "validate", "--lut", str(out), "--n", "3", "--passes",
                                 "1", "--no-store", "-f", "csv"])  # fmt: skip
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows[0]["predictor"] == "sum of parts" and rows[-1]["predictor"].startswith("MACs")
    assert is_share_of(float(rows[0]["within 10%"]), 3)  # a share of the 3 rows, as in JSON

    bad = runner.invoke(
        app, ["lut", "build", "--space", str(space), "--out", str(out), "--rounds", "2"]
    )
    assert bad.exit_code == 2 and "cannot be resumed" in bad.output

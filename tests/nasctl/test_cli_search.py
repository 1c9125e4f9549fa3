from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasctl.cli import app
from tests.conftest import DIGITS_VAL_IMAGES, is_share_of
from tests.results.conftest import TINY_SPACE, write_tiny_supernet

runner = CliRunner()

FAST = ["--images", "64", "--batch-size", "32", "--threads", "1", "--population", "2"]


@pytest.fixture
def space(tmp_path: Path) -> str:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return str(path)


@pytest.mark.usefixtures("quick_baseline_timing")
def test_search_then_results(space: str, tmp_path: Path) -> None:
    out = str(tmp_path / "runs")
    result = runner.invoke(app, ["search", "--target", "latency", "--space", space, "--trials",
                                 "2", "--runs", out, "--study", "s1", *FAST])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.output and "mobilenet_v3_small" in result.output
    # Not a terminal (a log file): the live view draws only at the end, so each finished
    # trial is also a plain line as it happens.
    lines = [ln for ln in result.output.splitlines() if ln.startswith("trial ")]
    assert [ln.split(":")[0] for ln in lines] == ["trial 0", "trial 1"], result.output
    assert "accuracy 0." in lines[0] and "latency (ms) " in lines[0]
    assert "[2/2 done, 2 feasible" in lines[1]
    # The view's last frame: the finished search, not the last trial's last batch.
    end = result.output[result.output.index("trials 2/2 done") :]
    assert "training trial" not in end.split("Pareto front")[0], result.output
    folder = tmp_path / "runs" / "s1"
    assert (folder / "pareto.png").stat().st_size > 10_000
    assert len((folder / "trials.csv").read_text().strip().splitlines()) == 3

    shown = runner.invoke(app, ["results", "show", "--study", "s1", "--runs", out, "-f", "json"])
    rows = json.loads(shown.stdout)
    assert len(rows) == 2 and all(r["latency_ms"] > 0 for r in rows)
    front = runner.invoke(app, ["results", "pareto", "--study", "s1", "--runs", out])
    assert front.exit_code == 0 and "baseline" in front.stdout
    png = tmp_path / "p.png"
    plotted = runner.invoke(app, ["results", "plot", "--study", "s1", "--runs", out,
                                  "--out", str(png)])  # fmt: skip
    assert plotted.exit_code == 0 and png.stat().st_size > 10_000


def test_search_log_names_the_budget_a_refused_trial_broke(space: str, tmp_path: Path) -> None:
    # 0.16 M MACs lies between the cheapest and the dearest of the tiny space.
    result = runner.invoke(app, ["search", "--target", "latency", "--space", space, "--trials",
                                 "3", "--runs", str(tmp_path), "--no-baselines", "--max-flops",
                                 "0.16", *FAST])  # fmt: skip
    assert result.exit_code == 0, result.output
    refused = [ln for ln in result.output.splitlines() if "over budget: MACs +" in ln]
    assert refused and all(ln.startswith("trial ") and "M  [" in ln for ln in refused)


def test_halving_search_shows_every_rung(space: str, tmp_path: Path) -> None:
    out = str(tmp_path / "runs")
    args = ["search", "--target", "flops", "--space", space, "--trials", "4", "--runs", out,
            "--study", "h", "--no-baselines", "--accuracy", "halving", "--eta", "2",
            "--min-fidelity", "0.5", *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "candidates at their highest fidelity" in " ".join(result.output.split())
    shown = runner.invoke(app, ["results", "show", "--study", "h", "--runs", out, "-f", "json"])
    rows = json.loads(shown.stdout)
    assert {r["rung"] for r in rows} == {0, 1}  # 32 then 64 images
    promoted = [r for r in rows if r["promoted_from"] is not None]
    assert promoted and all(len(json.loads(r["rung_accuracy"])) == 2 for r in promoted)
    table = runner.invoke(app, ["results", "show", "--study", "h", "--runs", out])
    assert table.exit_code == 0 and "accuracy by" in table.stdout and " > " in table.stdout
    front = runner.invoke(app, ["results", "pareto", "--study", "h", "--runs", out])
    assert front.exit_code == 0 and "highest fidelity" in front.stdout
    # The same command again resumes: nothing left to do, nothing trained.
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    rows_again = json.loads(
        runner.invoke(app, ["results", "show", "--study", "h", "--runs", out, "-f", "json"]).stdout
    )
    assert rows_again == rows


def test_supernet_search_marks_standalone_baselines(space: str, tmp_path: Path) -> None:
    supernet = write_tiny_supernet(tmp_path / "sn.pt")
    out = str(tmp_path / "runs")
    result = runner.invoke(app, ["search", "--target", "flops", "--space", space, "--trials",
                                 "3", "--runs", out, "--study", "s", "--accuracy", "supernet",
                                 "--supernet", str(supernet), *FAST])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    # No baseline is a point of the tiny space (width 0.5 only): trained standalone.
    assert "(baseline, trained standalone)" in text and "not on the supernet's scale" in text
    rows = json.loads(
        runner.invoke(app, ["results", "show", "--study", "s", "--runs", out, "-f", "json"]).stdout
    )
    assert len(rows) == 3 and all(r["train_seconds"] is None for r in rows)
    assert all(is_share_of(r["accuracy"], DIGITS_VAL_IMAGES) for r in rows)


BAD = [
    (["search", "--trials", "0"], "trials must be at least 1"),  # -1: guarded says 0 to 2^31-1
    (["search", "--max-flops", "0.0001"], "cannot be met"),
    (["search", "--max-latency", "-3"], "max_latency_ms must be a positive"),
    (["search", "--latency", "lut"], "--latency lut needs a table"),
    (["search", "--latency", "guess"], "Invalid value for '--latency'"),
    (["search", "--storage", "nope"], "storage must be an Optuna storage URL"),
    (["search", "--storage", "postgresql://u@127.0.0.1:1/x"], "cannot open storage"),
    (["search", "--space", "missing.toml"], "cannot read space file"),
    (["search", "--data", "no/such/dir"], ""),
    (["search", "--fidelity", "medium"], ""),
    (["results", "show", "--study", "nothing"], "no study 'nothing'"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "--runs", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_unknown_target_is_a_usage_error() -> None:
    result = runner.invoke(app, ["search", "--target", "energy"])
    assert result.exit_code == 2 and "energy" in result.output


def test_corrupt_storage_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "search.journal").write_bytes(b"\x00\x01 not a journal")
    result = runner.invoke(app, ["results", "show", "--runs", str(tmp_path)])
    assert result.exit_code == 2 and "not an Optuna journal file" in result.stderr
    assert (tmp_path / "search.journal").read_bytes() == b"\x00\x01 not a journal"

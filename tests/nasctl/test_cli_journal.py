"""A study whose journal a crash cut short: the CLI repairs it and says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasctl.cli import app
from tests.results.conftest import TINY_SPACE

runner = CliRunner()

FAST = ["--images", "64", "--batch-size", "32", "--threads", "1", "--population", "2"]


@pytest.mark.slow
def test_search_resumes_a_journal_whose_last_line_was_cut(tmp_path: Path) -> None:
    """The outside tester's reproduction: a 1-trial study, the last 7 bytes of its journal
    cut, the same search run again."""
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "runs"
    args = ["search", "--target", "flops", "--space", str(space), "--trials", "1", "--runs",
            str(out), "--study", "s", "--no-baselines", *FAST]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    journal = out / "s.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-7])
    torn = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -7]

    shown = runner.invoke(
        app, ["results", "show", "--study", "s", "--runs", str(out), "-f", "json"]
    )
    assert shown.exit_code == 0, shown.output
    warned = [ln for ln in shown.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and f"{len(torn)} bytes moved aside" in warned[0], shown.stderr
    assert [r["state"] for r in json.loads(shown.stdout)] == ["COMPLETE"]
    assert (out / "s.journal.torn").read_bytes() == torn + b"\n"

    journal.write_bytes(data[:-7])  # torn again, and this time the search itself meets it
    (out / "s.journal.torn").unlink()
    again = runner.invoke(app, args)  # the same search (trial 0 is finished: nothing to train)
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    assert sum(ln.startswith("warning: journal") for ln in again.stderr.splitlines()) == 1
    shown = runner.invoke(
        app, ["results", "show", "--study", "s", "--runs", str(out), "-f", "json"]
    )
    assert [r["state"] for r in json.loads(shown.stdout)] == ["COMPLETE"]
    assert "warning" not in shown.stderr  # repaired once, whole since

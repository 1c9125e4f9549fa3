"""What `nasctl search` shows while it runs and leaves behind (issue 21, "the run itself"):
baseline progress with an estimate of the time left, the budget set from the fastest
baseline, baselines timed together against MobileNetV2, the end's report, hint and table,
and --format on the commands that print a table."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import results._baselines as baselines_module
import results._pricing as pricing_module
import results._report as report_module
import results._search_config as config_module
from nasctl.cli import app
from results import open_existing
from search_space import format_arch, get_baseline
from tests.conftest import quick_baseline_latency
from tests.results.conftest import TINY_SPACE

runner = CliRunner()

FAST = ["--images", "64", "--batch-size", "32", "--threads", "1", "--population", "2"]
#: Two resolutions: the search used to open with a note on --baseline-resolution then.
TWO_RES_SPACE = TINY_SPACE.replace("resolutions = [32]", "resolutions = [24, 32]")


class Run:
    """One search with baselines and --max-latency fastest-baseline-5%, shared by the
    tests below (a search costs seconds on 2 shared cores)."""

    def __init__(self, root: Path) -> None:
        self.out = root / "runs"
        self.timed: list[dict[str, Any]] = []
        space = root / "two.toml"
        space.write_text(TWO_RES_SPACE)
        real = pricing_module.measure_many

        def spy(models: Any, config: Any = None, reference: Any = None, **kw: Any) -> Any:
            self.timed.append({"names": kw.get("names"), "reference": reference})
            return real(models, config, reference=reference, **kw)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pricing_module, "BASELINE_LATENCY", quick_baseline_latency())
            mp.setattr(pricing_module, "measure_many", spy)
            mp.setenv("NASCTL_LATENCY_LOCK", str(root / "latency.lock"))
            args = ["search", "--space", str(space), "--trials", "2", "--runs", str(self.out),
                    "--study", "s", "--max-latency", "fastest-baseline-5%", *FAST]  # fmt: skip
            self.result = runner.invoke(app, args)
        self.text = self.result.output
        self.folder = self.out / "s"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    done = Run(tmp_path_factory.mktemp("search_run"))
    assert done.result.exit_code == 0, done.text
    yield done


def test_baselines_show_progress_results_and_time_left(run: Run) -> None:
    lines = run.text.splitlines()
    done = [ln for ln in lines if ln.startswith("baseline ")]
    names = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
    assert [ln.split(" (")[0] for ln in done] == [f"baseline {n}" for n in names], run.text
    assert all(f"({i}/4): accuracy 0." in ln for i, ln in enumerate(done, 1))
    assert all("latency (ms) " in ln and "(p10-p90 " in ln for ln in done)
    # An estimate of the time left, from the measured time per baseline, while any is left.
    assert "left (" in done[0] and "per baseline" in done[0]
    # No note on --baseline-resolution any more; the resolution is in --help.
    assert "--baseline-resolution" not in run.text and "note:" not in run.text
    # A trial's line gets the estimate too, once one trained (the rendered view's test
    # checks its words: here a tiny trial may leave under a second, which is not shown).
    assert [ln for ln in lines if ln.startswith("trial 0:") and "[1/2 done" in ln]


def test_budget_from_the_fastest_baseline_is_printed_and_stored(run: Run) -> None:
    first = run.text.splitlines()[0]
    assert first.startswith("latency budget ") and "- 5% (at 32x32, measured)" in first
    meta = open_existing("s", run.out, None).user_attrs["nasctl"]
    chosen = meta["latency_budget"]
    fastest = min(chosen["baselines_ms"], key=chosen["baselines_ms"].get)
    assert chosen["fastest"] == fastest and chosen["rule"] == "fastest-baseline-5%"
    assert chosen["latency_ms"] == pytest.approx(0.95 * chosen["fastest_ms"])
    assert meta["budgets"]["latency_ms"] == chosen["latency_ms"]
    assert f"{chosen['latency_ms']:.3f} ms" in first


def test_baselines_are_timed_together_with_v2_in_every_round(run: Run) -> None:
    # One interleaved measurement of all four against MobileNetV2 at 32 px (budget and
    # records both): never one quick measurement each.
    together = [c for c in run.timed if c["names"] and len(c["names"]) == 4]
    assert len(together) == 1 and together[0]["reference"].resolution == 32
    v2 = get_baseline("mobilenet_v2", 1.0, 32, 10)
    assert format_arch(together[0]["reference"]) == format_arch(v2)
    base = pd.read_csv(run.folder / "baselines.csv")
    assert (base["latency_p10_ms"] <= base["latency_ms"]).all()
    assert (base["latency_ms"] <= base["latency_p90_ms"]).all()
    assert base["ratio_to_v2"].gt(0).all()
    budget = open_existing("s", run.out, None).user_attrs["nasctl"]["latency_budget"]
    assert dict(zip(base["name"], base["latency_ms"], strict=True)) == budget["baselines_ms"]
    assert "p10-p90 (ms)" in run.text  # the final table shows the spread


def test_the_end_writes_a_report_and_says_what_to_run_next(run: Run) -> None:
    text = " ".join(run.text.split())
    out = str(run.out)
    assert f"nasctl compare --study s --runs {out}" in text
    assert f"nasctl export --study s --runs {out} --compare-best -f onnx" in text
    for header in ("trial", "accuracy", "latency (ms)", "MACs (M)", "params (M)"):
        assert header in text  # the live view's words and units
    assert "latency_ms" not in text
    front = pd.read_csv(run.folder / "pareto.csv")
    if front["arch"].str.len().gt(70).any():
        assert f"arch strings in full: {run.folder / 'pareto.csv'}" in text
    report = (run.folder / "report.md").read_text()
    assert report.startswith("# nasctl search: study s\n")
    for arch in front["arch"]:
        assert f"`{arch}`" in report  # in full
    assert "## Baselines" in report and "mobilenet_v3_small" in report
    assert "fastest-baseline-5%" in report and f"nasctl compare --study s --runs {out}" in report
    assert "MobileNetV2's own x V2 is " in report
    assert "fidelity 1 epoch of 64 images, batch 32 (search)" in report


def test_pareto_plot_names_front_trials_and_its_setting(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def keep(fig: Any, ax: Any, xlabel: str, title: str, path: Path) -> Path:
        labels = ax.get_legend_handles_labels()[1]
        seen.update(texts=[t.get_text() for t in ax.texts], title=title, labels=labels)
        return path

    monkeypatch.setattr(report_module, "save_accuracy_plot", keep)
    study = open_existing("s", run.out, None)
    frame = report_module.trials_frame(study)
    baselines = baselines_module.baselines_of(study)
    title = report_module.pareto_title(study, frame, baselines)
    budget = study.user_attrs["nasctl"]["budgets"]["latency_ms"]
    report_module.plot_front(frame, baselines, "latency_ms", run.folder / "x.png", title, budget)
    front = report_module.front_frame(frame, "latency_ms")
    assert {f"#{n}" for n in front["number"]} <= set(seen["texts"])
    assert f"budget {budget:.4g}" in seen["labels"]
    for words in ("data digits", "fidelity 1 epoch", "candidates at ", "baselines at 32 px",
                  "latency measured on cpu"):  # fmt: skip
        assert words in seen["title"], seen["title"]


BAD_BUDGETS = ["fastest", "fastest-baseline-5", "fastest-baseline-100%", "fastest-baseline--5%",
               "slowest-baseline", "5ms", "fastest-baseline-x%"]  # fmt: skip


@pytest.mark.parametrize("value", BAD_BUDGETS)
def test_bad_max_latency_is_one_line_before_any_work(value: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "--max-latency", value, "--runs", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "--max-latency" in result.stderr
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.5", (2.5, None)), ("fastest-baseline", (None, 0.0)),
     ("fastest-baseline-5%", (None, 5.0)), ("Fastest-Baseline-2.5%", (None, 2.5)),
     (None, (None, None))],
)  # fmt: skip
def test_parse_max_latency(text: str | None, expected: tuple[Any, Any]) -> None:
    assert config_module.parse_max_latency(text) == expected


def test_search_table_as_json_and_csv(tmp_path: Path) -> None:
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    args = ["search", "--target", "flops", "--space", str(space), "--trials", "2", "--runs",
            str(tmp_path), "--study", "f", "--no-baselines", *FAST]  # fmt: skip
    shown = runner.invoke(app, [*args, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)  # the live view and the hint went to stderr
    front = pd.read_csv(tmp_path / "f" / "pareto.csv")
    assert [r["arch"] for r in rows] == list(front["arch"])  # in full
    assert all(r["kind"] == "candidate" and r["macs"] > 0 for r in rows)
    assert "nasctl compare --study f" in shown.stderr
    again = runner.invoke(app, [*args, "-f", "csv"])  # resumed: nothing left, the table again
    assert again.exit_code == 0, again.output
    table = list(csv.DictReader(io.StringIO(again.stdout)))
    assert [r["arch"] for r in table] == list(front["arch"])


def test_live_view_shows_the_baseline_now_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a terminal shows while the baselines train (the search's first minutes)."""
    from rich.console import Console

    from nasctl._search_view import LiveView
    from results import SearchTarget
    from results._search_config import BaselineStep, Event

    clock = [100.0]
    monkeypatch.setattr("nasctl._search_view.time.monotonic", lambda: clock[0])
    screen = Console(record=True, width=200, file=io.StringIO())
    view = LiveView(SearchTarget.latency, 12, screen)

    def shown() -> str:
        screen.print(view.render())
        return screen.export_text()

    step = BaselineStep("mobilenet_v1", 1, 4)
    view.on_event(Event("baseline", "training baseline mobilenet_v1 (1/4) at 64x64", None, step))
    first = shown()
    assert "baselines 0/4 done, now mobilenet_v1 (1/4)" in first and "left" not in first
    clock[0] += 120.0  # two minutes per baseline: 3 more, then 12 trials taken as long
    record = {"accuracy": 0.5, "latency_ms": 2.0, "latency_p10_ms": 1.9, "latency_p90_ms": 2.2}
    view.on_event(Event("baseline-done", "mobilenet_v1", None, replace(step, record=record)))
    second = shown()
    assert (
        "baseline mobilenet_v1 (1/4): accuracy 0.5000, latency (ms) 2 (p10-p90 1.900-2.200)"
        in second
    )
    assert (
        "about 30.0 min left (2.0 min per baseline, a trial taken as long as a baseline)" in second
    )
    # The baselines done: a refused trial (no time spent) leaves a baseline's time standing
    # in for a trial; once one trained, the mean of this process's trials is used.
    view.baseline_seconds = [120.0] * 4
    view.baseline = replace(step, index=4)
    view.counts["done"], view.trial_seconds, view.trained = 1, [0.0], 0
    assert view.eta_text() == "  about 22.0 min left (a trial taken as long as a baseline)"
    view.counts["done"], view.trial_seconds, view.trained = 2, [0.0, 60.0], 1
    assert view.eta_text() == "  about 5.0 min left (30 s per trial)"
    view.counts["done"] = 12
    assert view.eta_text() == ""  # nothing left

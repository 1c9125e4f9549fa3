"""The front door and the benchmark document agree with the measurements they cite, and
the README's commands are the ones CI runs."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from bench.make_benchmarks_doc import DOC, RESULTS, headline, headline_text, render

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_benchmarks_doc_is_what_the_script_generates() -> None:
    assert DOC.read_text() == render(), "run: python bench/make_benchmarks_doc.py"


def test_readme_headline_figures_equal_the_json() -> None:
    e = json.loads((RESULTS / "end_to_end.json").read_text())
    text = _flat(README)
    assert _flat(headline_text()) in text
    m = re.search(
        r"faster than each of them in (\d+) of (\d+) latency measurements: ([\d.]+)% top-1 at "
        r"([\d.]+) x MobileNetV2's latency \(training every candidate\) and ([\d.]+)% at "
        r"([\d.]+) x \(with a supernet\), against MobileNetV3-Large's ([\d.]+)% and "
        r"MobileNetV1's ([\d.]+) x",
        text,
    )
    assert m is not None
    wins, runs, train, train_x, supernet, supernet_x, v3l, v1_x = m.groups()
    # The best finalist of each arm: the one beating all four baselines.
    best = {
        arm: next(
            f for k, f in e["finalists"].items() if k.startswith(arm) and len(f["beats"]) == 4
        )
        for arm in ("train", "supernet")
    }
    assert int(wins) == int(runs) == e["repeats"]
    lat = json.loads((RESULTS / "end_to_end_compare_latency.json").read_text())
    for name in ("train_trial_268", "supernet_trial_1952"):
        assert all(n == e["repeats"] for n in lat["runs_faster_than"][name].values())
    assert float(train) == round(100 * best["train"]["accuracy"], 1)
    assert float(train_x) == round(best["train"]["ratio_to_v2"], 2)
    assert float(supernet) == round(100 * best["supernet"]["accuracy"], 1)
    assert float(supernet_x) == round(best["supernet"]["ratio_to_v2"], 2)
    assert float(v3l) == round(100 * e["baselines"]["mobilenet_v3_large"]["accuracy"], 1)
    assert float(v1_x) == round(e["baselines"]["mobilenet_v1"]["ratio_to_v2"], 2)
    assert headline()["minutes"] < 90


def test_benchmarks_doc_headline_figures_equal_the_json() -> None:
    doc = DOC.read_text()
    e = json.loads((RESULTS / "end_to_end.json").read_text())
    row = re.search(r"\| best finalist: top-1, x V2 \(range\) \| (.+?) \| (.+?) \|", doc)
    assert row is not None
    for cell, key in zip(row.groups(), ("supernet_trial_1952", "train_trial_268"), strict=True):
        top1, ratio = re.match(r"([\d.]+)%, ([\d.]+)", cell).groups()  # type: ignore[union-attr]
        assert float(top1) == round(100 * e["finalists"][key]["accuracy"], 2)
        assert float(ratio) == round(e["finalists"][key]["ratio_to_v2"], 3)
    # The lookup table: both truths, each the median of its three runs.
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("lut_validate_passes3_s*.json"))]
    m = re.search(
        r"within \+-10% of the drift-cancelled truth (\d+)% \(goal 95%\), of the plain medians "
        r"(\d+)%",
        _flat(doc),
    )
    assert m is not None and len(runs) == 3
    assert int(m[1]) == round(100 * statistics.median(r["corrected"]["within_10"] for r in runs))
    assert int(m[2]) == round(100 * statistics.median(r["absolute"]["within_10"] for r in runs))
    # The training figure says what it measured: fit itself against a bare loop in one
    # run; the older figure is marked as a copy of fit's step.
    t = json.loads((RESULTS / "train_throughput.json").read_text())
    ratios = [r["fit_over_bare"]["median"] for r in t["results"]]
    assert len(ratios) == 4 and t["rounds"] >= 7
    flat = _flat(doc)
    assert "`fit` itself vs a bare loop, measured in one run" in flat
    assert f"`fit` {min(ratios):.2f}-{max(ratios):.2f} of the bare loop's images/s" in flat
    assert "a copy of `fit`'s step, not `fit`" in flat
    assert "a copy of `fit`'s per-step work" in flat


def _readme_commands() -> list[str]:
    return [line.strip() for line in README.splitlines() if line.startswith("    python3 -m venv")]


def test_readme_opens_with_two_commands_from_a_bare_shell() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    first_code = next(line for line in README.splitlines() if line.startswith("    "))
    assert first_code.strip() == commands[0]
    assert commands[0].endswith("nasctl search --target latency")
    for command in commands:
        assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
        assert "--index-url https://download.pytorch.org/whl/cpu" in command


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in [line.strip() for line in ci]

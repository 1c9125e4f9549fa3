from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import results._compare
import results._pricing
import results._search
from estimators import TrainProgress, evaluate, get_recipe, load_data
from nasctl._cmd_compare import progress_line
from nasctl.cli import app
from results import SearchConfig, export_model, read_checkpoint, run_search
from results._compare import CompareError, choose_contenders, run_compare
from results._compare_report import dominated, markdown_report, write_compare_outputs
from results._report import pick_trial
from search_space import format_arch, get_baseline
from tests.conftest import DIGITS_VAL_IMAGES, is_share_of, quick_baseline_latency
from tests.results.conftest import TINY_SPACE

RECIPE = get_recipe("search", batch_size=32)
FAST_LATENCY = quick_baseline_latency()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def study(runs: Path):
    """A finished latency search with its baselines recorded (their resolution is what
    compare defaults to); the baselines are timed with the quick protocol, not the
    search's 5 x 20 calls: no test here reads their latency."""
    space = runs / "tiny.toml"
    space.write_text(TINY_SPACE)
    config = SearchConfig(
        study="c",
        target="latency",
        space_path=space,
        trials=3,
        population=2,
        recipe=RECIPE,
        images_per_candidate=64,
        threads=1,
        latency=FAST_LATENCY,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(results._pricing, "BASELINE_LATENCY", FAST_LATENCY)
        return run_search(config, runs / "runs")


def test_compare_retrains_times_and_resumes(study, tmp_path: Path, monkeypatch) -> None:
    contenders = choose_contenders(study, top=2, under_latency_ms=None, baseline_widths=[1.0])
    assert [c.baseline for c in contenders].count(True) == 4
    assert 1 <= [c.baseline for c in contenders].count(False) <= 2
    recipe = RECIPE.replace(epochs=1, train_images=64)
    folder = tmp_path / "cmp"
    frame = run_compare(
        contenders, "digits", recipe, folder, FAST_LATENCY, threads=1, latency_runs=2
    )
    assert len(frame) == len(contenders) and (frame["latency_ms"] > 0).all()
    assert frame["ratio_to_v2"].notna().all()
    assert (frame["device"] == "cpu/fp32").all()  # where and at what precision each trained
    assert "Trained on: cpu/fp32." in markdown_report(frame, "t", "nasctl compare")
    # accuracy is top-1 on the held-out test split, val top-1 beside it, the split named
    held_out = load_data("digits", cand_resolution(contenders)).test_y
    assert (frame["test_split"] == "20% of train, held out").all()
    assert (frame["test_images"] == len(held_out)).all()
    assert all(is_share_of(v, DIGITS_VAL_IMAGES) for v in frame["val_accuracy"])
    report = markdown_report(frame, "t", "nasctl compare")
    assert "| model | test top-1 | val top-1 |" in report
    assert f"held-out test split (20% of train, held out, {len(held_out):,} images)" in report
    for row in frame.itertuples():  # two whole measurements, their median reported
        runs = [float(v) for v in row.ratio_to_v2_runs.split()]
        assert len(runs) == 2 and row.ratio_to_v2 == pytest.approx(sum(runs) / 2, rel=1e-4)
    for row in frame.itertuples():
        if row.dominates:  # every marked baseline is truly beaten on both axes
            for name in row.dominates.split(", "):
                base = frame[frame["name"] == name].iloc[0]
                assert base.accuracy < row.accuracy
                assert all(
                    float(b) > float(c)
                    for b, c in zip(
                        base.ratio_to_v2_runs.split(), row.ratio_to_v2_runs.split(), strict=True
                    )
                )
    assert "Reproduce" in markdown_report(frame, "t", "nasctl compare")

    # Each retrained model's weights are kept, in a form export reads: the network to ship.
    cand = next(c for c in contenders if not c.baseline)
    state, recorded = read_checkpoint(folder / "models" / f"{cand.name}.pt")
    assert recorded == cand.spec
    res = export_model(cand.spec, tmp_path / "ship", "onnx", state)
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    # ... and its reported accuracy is those weights on the test split, not on val.
    data = load_data("digits", cand.spec.resolution)
    model = results._compare.load_checkpoint(folder / "models" / f"{cand.name}.pt").model
    on_test = evaluate(model, data.test_x, data.test_y, data.classes, data.mean, data.std)
    row = frame[frame["name"] == cand.name].iloc[0]
    assert row["accuracy"] == on_test.top1 and row["test_images"] == on_test.images

    # A second run trains nothing: every model's result is on disk.
    def no_training(*a, **k):
        raise AssertionError("retrained a finished model")

    monkeypatch.setattr("results._compare.train_and_evaluate", no_training)
    again = run_compare(contenders, "digits", recipe, folder, FAST_LATENCY, threads=1)
    assert list(again["accuracy"]) == list(frame["accuracy"])


def cand_resolution(contenders) -> int:
    return next(c for c in contenders if not c.baseline).spec.resolution


def _pixels(images) -> set[bytes]:
    return {bytes(row.flatten().tolist()) for row in images[torch.arange(len(images))]}


def test_search_never_trains_or_validates_on_the_test_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every image distinct; whatever --seed the search uses, the images it trains and
    selects on exclude the test split compare reports on (which does not move with it)."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "photos"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(10):
            pixels = np.full((16, 16, 3), 100 * c + 5 * i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i}.png")
    seen = []
    real = results._search.train_and_evaluate

    def spying(spec, data, *a, **k):
        seen.append(data)
        return real(spec, data, *a, **k)

    monkeypatch.setattr("results._search.train_and_evaluate", spying)
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    for seed in (0, 3):
        config = SearchConfig(
            study=f"s{seed}",
            space_path=space,
            data=str(root),
            trials=1,
            population=2,
            seed=seed,
            recipe=RECIPE.replace(epochs=1),
            images_per_candidate=8,
            threads=1,
            latency=FAST_LATENCY,
            baselines=False,
        )
        run_search(config, tmp_path / "runs")
    assert len(seen) == 2 and _pixels(seen[0].val_x) != _pixels(seen[1].val_x)  # seeded val
    for data in seen:
        test = _pixels(data.test_x)
        assert len(test) == 4 and data.test_source == "20% of train, held out"
        assert not test & _pixels(data.train_x) and not test & _pixels(data.val_x)
        assert test == _pixels(seen[0].test_x)
        compared = load_data(root, data.resolution, seed=1)  # compare --seed 1
        assert _pixels(compared.test_x) == test


def test_baseline_variants_are_labelled(study) -> None:
    plain = choose_contenders(study, 1, None, [1.0])
    default = next(c.spec.resolution for c in plain if c.name == "mobilenet_v2")
    other = 64 if default != 64 else 48
    contenders = choose_contenders(study, 1, None, [1.0, 0.5], [default, other])
    bases = {c.name: c.spec for c in contenders if c.baseline}
    assert len(bases) == 16
    assert bases["mobilenet_v2"].resolution == default
    assert bases["mobilenet_v2"] == get_baseline("mobilenet_v2", 1.0, default, 10)
    assert bases[f"mobilenet_v3_small_0.5_r{other}"] == get_baseline(
        "mobilenet_v3_small", 0.5, other, 10
    )
    with pytest.raises(CompareError, match="baseline resolution must be"):
        choose_contenders(study, 1, None, [1.0], [8])


def test_choose_contenders_errors(study) -> None:
    with pytest.raises(CompareError, match="top must be"):
        choose_contenders(study, 0, None, [1.0])
    with pytest.raises(CompareError, match="no feasible trained trial under"):
        choose_contenders(study, 1, 1e-6, [1.0])


def test_pick_trial_for_export(study) -> None:
    number, spec = pick_trial(study, best=True)
    accs = [t.user_attrs["accuracy"] for t in study.trials if t.user_attrs.get("feasible")]
    assert study.trials[number].user_attrs["accuracy"] == max(accs)
    assert json.loads(spec)["format"] == "nasctl-arch/1"


def test_export_from_a_study(study, runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--study",
            "c",
            "--runs",
            str(runs / "runs"),
            "--trial",
            "1",
            "-f",
            "json",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(study.trials[1].user_attrs["spec"])
    bad = CliRunner().invoke(
        app,
        ["export", "--study", "c", "--runs", str(runs / "runs"), "-f", "json", "-o", str(out)],
    )
    assert bad.exit_code == 2 and "exactly one of" in bad.stderr


def test_compare_processes_share_the_training(study, tmp_path: Path, monkeypatch) -> None:
    """A model claimed by a live process is waited for, not trained again; a claim whose
    process died is taken over."""
    contenders = choose_contenders(study, top=1, under_latency_ms=None, baseline_widths=[1.0])
    recipe = RECIPE.replace(epochs=1, train_images=64)
    folder = tmp_path / "cmp"
    models = folder / "models"
    models.mkdir(parents=True)
    first = run_compare(contenders[:1], "digits", recipe, folder, FAST_LATENCY, threads=1)
    done = json.loads((models / f"{contenders[0].name}.json").read_text())
    (models / f"{contenders[0].name}.json").unlink()
    # Held by a live process (ours, under another name): its result appears later.
    (models / f"{contenders[0].name}.claim").write_text(f"{socket.gethostname()}:{os.getppid()}")
    # Held by a process that is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (models / f"{contenders[1].name}.claim").write_text(f"{socket.gethostname()}:{dead.pid}")

    def finish_later() -> None:
        time.sleep(0.5)
        (models / f"{contenders[0].name}.json").write_text(json.dumps(done))
        (models / f"{contenders[0].name}.claim").unlink()

    trained = []
    real = results._compare.train_and_evaluate

    def counting(spec, *a, **k):
        trained.append(format_arch(spec))
        return real(spec, *a, **k)

    monkeypatch.setattr("results._compare.train_and_evaluate", counting)
    helper = threading.Thread(target=finish_later)
    helper.start()
    frame = run_compare(
        contenders[:2], "digits", recipe, folder, FAST_LATENCY, threads=1, poll_seconds=0.05
    )
    helper.join()
    assert trained == [format_arch(contenders[1].spec)]
    assert frame["accuracy"].iloc[0] == first["accuracy"].iloc[0]
    assert not list(models.glob("*.claim"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top", "0"], "top must be at least 1"),
        (["--baseline-resolution", "8"], "baseline resolution must be in [16, 1024], got 8"),
        (["--baseline-width", "5"], "baseline width must be in (0, 4], got 5.0"),
        (["--under-latency", "-1"], "--under-latency must be a finite number >= 0, got -1.0"),
        (["--latency-rounds", "0"], "rounds must be a positive integer, got 0"),
        (["--latency-runs", "0"], "latency runs must be at least 1, got 0"),
    ],
)
def test_compare_cli_refuses_bad_values(study, runs: Path, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(
        app, ["compare", "--study", "c", "--runs", str(runs / "runs"), *extra]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_faster_means_a_lower_ratio_to_v2_not_a_lower_absolute_median() -> None:
    """Load drift moves absolute medians (a run of the CIFAR-10 comparison had a candidate
    at 6.20 ms "beating" MobileNetV1 at 6.71 ms while its ratio to V2 was 0.850 against
    V1's 0.847; five quiet runs then found V1 faster every time): the ratio decides."""
    frame = pd.DataFrame(
        [
            {
                "name": "cand",
                "baseline": False,
                "accuracy": 0.61,
                "latency_ms": 6.20,
                "ratio_to_v2": 0.850,
            },
            {
                "name": "v1",
                "baseline": True,
                "accuracy": 0.54,
                "latency_ms": 6.71,
                "ratio_to_v2": 0.847,
            },
            {
                "name": "v3l",
                "baseline": True,
                "accuracy": 0.60,
                "latency_ms": 5.00,
                "ratio_to_v2": 1.712,
            },
            {
                "name": "v3s",
                "baseline": True,
                "accuracy": 0.62,
                "latency_ms": 9.00,
                "ratio_to_v2": 1.10,
            },
        ]
    )
    marks = [dominated(row, frame) for row in frame.itertuples()]
    assert marks == ["v3l", "", "", ""]
    frame["dominates"] = marks
    assert "No candidate beats every baseline" in markdown_report(
        frame.assign(
            top5=0.9,
            latency_p10_ms=1.0,
            latency_p90_ms=2.0,
            macs=1e6,
            params=1e6,
            train_seconds=1.0,
        ),
        "t",
        "nasctl compare",
    )


def _compare_frame() -> pd.DataFrame:
    """A compare table as run_compare returns it: a winner, a loser and MobileNetV2."""
    return pd.DataFrame(
        [
            {"name": "cand", "baseline": False, "accuracy": 0.62, "dominates": "v2"},
            {"name": "slow", "baseline": False, "accuracy": 0.40, "dominates": ""},
            {"name": "v2", "baseline": True, "accuracy": 0.45, "dominates": ""},
        ]
    ).assign(
        val_accuracy=[0.65, 0.41, 0.5],
        test_split="test/",
        test_images=1000,
        top5=0.9,
        latency_ms=2.0,
        latency_p10_ms=1.0,
        latency_p90_ms=3.0,
        ratio_to_v2=[0.9, 1.2, 1.0],
        ratio_to_v2_runs=["0.9 0.91", "1.2 1.21", "1.0 1.0"],
        macs=1e6,
        params=1e6,
        train_seconds=1.0,
    )


def test_markdown_report_reads_a_compare_csv_back(tmp_path: Path) -> None:
    """pandas reads an empty ``dominates`` cell back as NaN: the report still names the
    winner and the losers alike."""
    frame = _compare_frame()
    frame.to_csv(tmp_path / "compare.csv", index=False)
    back = pd.read_csv(tmp_path / "compare.csv")
    assert back["dominates"].isna().sum() == 2  # what made the report fail before
    report = markdown_report(back, "t", "nasctl compare")
    assert "| cand | 0.6200 | 0.6500 |" in report and report.count("| - |") == 2
    assert "held-out test split (test/, 1,000 images)" in report
    # a CSV from before the test split: its accuracy was val top-1, and says so
    old = markdown_report(
        back.drop(columns=["val_accuracy", "test_split", "test_images"]), "t", "c"
    )
    assert "| model | val top-1 | latency" in old and "| cand | 0.6200 | 2.00 (1.00-3.00)" in old
    assert "1 candidate(s) beat at least one baseline" in report
    assert "Beating every baseline: cand." in report


def test_compare_prints_one_line_per_epoch() -> None:
    """The last step of an epoch and the end-of-epoch report both have batch == batches;
    only the latter (with the validation top-1) is a line, so a log shows each epoch once."""
    last_step = TrainProgress(0, 3, 390, 390, 1.817, 0.31, 246.0)
    epoch_end = TrainProgress(0, 3, 390, 390, 1.817, 0.31, 259.0, val_top1=0.4412)
    assert progress_line("trial_268", last_step) is None
    assert progress_line("trial_268", TrainProgress(0, 3, 5, 390, 2.2, 0.1, 200.0)) is None
    assert progress_line("trial_268", epoch_end) == (
        "  epoch 1/3 loss 1.817 val top-1 0.4412 259 img/s"
    )
    assert "training" in str(progress_line("trial_268", None))
    assert "another compare process" in str(progress_line("waiting for trial_1", None))


def test_a_candidate_must_be_faster_in_every_latency_run() -> None:
    """Five runs of the CIFAR-10 comparison found trial 4 faster than MobileNetV2 in one
    run only (median 1.012 vs 0.967): faster in some runs is not faster."""
    frame = pd.DataFrame(
        [
            {
                "name": "cand",
                "baseline": False,
                "accuracy": 0.62,
                "ratio_to_v2": 0.93,
                "ratio_to_v2_runs": "0.9200 0.9300 1.0100",
            },
            {
                "name": "v2",
                "baseline": True,
                "accuracy": 0.45,
                "ratio_to_v2": 0.97,
                "ratio_to_v2_runs": "0.9700 0.9600 0.9800",
            },
            {
                "name": "v3l",
                "baseline": True,
                "accuracy": 0.60,
                "ratio_to_v2": 1.40,
                "ratio_to_v2_runs": "1.4000 1.3000 1.5000",
            },
        ]
    )
    assert dominated(next(frame.itertuples()), frame) == "v3l"


def test_write_compare_outputs_writes_the_table_the_plot_and_the_report(tmp_path: Path) -> None:
    frame = _compare_frame()
    folder = tmp_path / "runs" / "s" / "compare"
    paths = write_compare_outputs(frame, folder, "s", "quick", "nasctl compare --study s")
    assert [p.name for p in paths] == ["compare.csv", "compare.png", "compare.md"]
    assert all(p.parent == folder for p in paths)
    back = pd.read_csv(paths[0], keep_default_na=False)
    assert back["name"].tolist() == ["cand", "slow", "v2"] and back["accuracy"][0] == 0.62
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = paths[2].read_text(encoding="utf-8")
    assert report.startswith("# nasctl compare: study s") and "nasctl compare --study s" in report
    assert "Beating every baseline: cand." in report

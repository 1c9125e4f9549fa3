"""The latency lookup table: keys, build and resume, predict, portability, validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from estimators import (
    Correction,
    LatencyConfig,
    LutError,
    build_table,
    load_table,
    part_key,
    predict,
    save_table,
    validate_table,
)
from estimators._lut import table_space
from estimators._lut_build import table_parts
from estimators._lut_validate import _fit, _fit_scale, accuracy
from search_space import baseline_names, get_baseline, load_space, plan_part

BENCH_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"

TINY_SPACE = """
name = "tiny"
widths = [0.5, 1.0]
resolutions = [32]

[stem]
channels = 8

[head]
conv_channels = 32
act = "hswish"

[[stages]]
channels = 16
stride = 2
depth = [1, 2]
kernel = [3, 5]
expansion = [1, 3]
se = [false, true]

[[stages]]
channels = 24
stride = 2
depth = [1]
kernel = [3]
expansion = [3]
"""
FAST = LatencyConfig(rounds=1, repeats=2, min_warmup=3, max_warmup=3)


@pytest.fixture(autouse=True)
def private_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASCTL_LATENCY_LOCK", str(tmp_path / "latency.lock"))


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def table_file(tmp_path: Path, space_file: Path) -> Path:
    out = tmp_path / "lut.json"
    build_table(out, space_file, FAST, num_classes=10)
    return out


def test_keys_tell_every_distinct_part_of_the_default_space_apart() -> None:
    parts = load_space().distinct_parts(10)
    keys = {part_key(p, 10) for p in parts}
    assert len(keys) == len(parts)


def test_key_ignores_position_and_dropout() -> None:
    spec = load_space().random_spec(0, 10)
    head = spec.parts()[-1]
    other = spec.replace(head=dataclasses.replace(head.spec, dropout=0.5))
    assert part_key(head, 10) == part_key(other.parts()[-1], 10)
    block = spec.parts()[1]
    assert part_key(block, 10) == part_key(dataclasses.replace(block, name="block"), 10)


def _committed_tables() -> list[Path]:
    tables = []
    for path in sorted(BENCH_RESULTS.rglob("*.json")):
        head = path.read_text(encoding="utf-8")[:200]
        if '"format": "nasctl-lut/' in head:
            tables.append(path)
    return tables


@pytest.mark.parametrize("path", _committed_tables(), ids=lambda p: p.name)
def test_every_key_of_a_committed_table_is_reproduced(path: Path) -> None:
    """Tables already written (these, and users') must keep loading and answering: the
    keys part_key gives the table's space and the baselines are exactly its keys."""
    table = load_table(path)
    keys = set(table_parts(table_space(table), table.num_classes))
    assert table.complete and set(table.entries) == keys


def test_committed_tables_are_found() -> None:
    assert _committed_tables()


def _cost(part, num_classes: int) -> tuple:
    """What the plan says a part computes, without names and dropout."""
    return tuple(
        dataclasses.astuple(dataclasses.replace(layer, name="", part="", reads=(), dropout=0.0))
        for layer in plan_part(part, num_classes)
    )


def test_a_key_names_one_plan_and_a_plan_one_key() -> None:
    """part_key reads the spec's fields, not the plan (the keys of written tables must not
    change); over the default space's parts, the baselines' and 20 random specs', equal
    keys are equal plans and equal plans equal keys, so a block option that changed the
    plan but not the key (or back) fails here."""
    space = load_space()
    parts = [*space.distinct_parts(10), *table_parts(space, 10).values()]
    parts += [p for seed in range(20) for p in space.random_spec(seed, 10).parts()]
    costs: dict[str, set[tuple]] = {}
    for part in parts:
        costs.setdefault(part_key(part, 10), set()).add(_cost(part, 10))
    assert all(len(c) == 1 for c in costs.values())
    assert len({c for group in costs.values() for c in group}) == len(costs)


def test_build_covers_the_space_and_predict_sums_the_parts(table_file: Path) -> None:
    table = load_table(table_file)
    assert table.complete and len(table.entries) == table.expected
    assert table.config == FAST and table.num_classes == 10 and table.space_name == "tiny"
    # One reference timing per batch of 8 parts; ratios are relative to it.
    assert len(table.reference_batches_us) == -(-table.expected // 8)
    assert table.reference_us == pytest.approx(np.median(table.reference_batches_us))
    assert all(e.ratio > 0 and e.median_us > 0 for e in table.entries.values())
    space = table_space(table)
    for seed in range(5):
        spec = space.random_spec(seed, 10)
        ratios = sum(table.entries[part_key(p, 10)].ratio for p in spec.parts())
        expected = ratios * table.reference_us
        assert predict(spec, table) == pytest.approx(expected)
    table.correction = Correction(slope=2.0, intercept_us=10.0, n=5)
    assert predict(spec, table) == pytest.approx(2 * expected + 10)
    assert predict(spec, table, corrected=False) == pytest.approx(expected)


def test_missing_entry_names_the_part(table_file: Path) -> None:
    table = load_table(table_file)
    spec = table_space(table).random_spec(3, 10)
    key = part_key(spec.parts()[1], 10)
    del table.entries[key]
    with pytest.raises(LutError, match=rf"no entry for blocks\.0 \({key}\)"):
        predict(spec, table)
    with pytest.raises(LutError, match=r"num_classes of the architecture \(100\)"):
        predict(spec.replace(num_classes=100), table)


def test_json_round_trip_is_portable(table_file: Path, tmp_path: Path) -> None:
    table = load_table(table_file)
    table.correction = Correction(1.1, -5.0, 7)
    data = json.loads(json.dumps(table.to_dict()))
    assert data["unit"] == "us" and data["protocol"]["backend"] == "torch"
    assert {"torch", "onnxruntime", "cpu"} <= set(data["host"])
    assert str(tmp_path) not in json.dumps(data)  # nothing tied to this machine's paths
    copy = tmp_path / "elsewhere" / "copy.json"
    save_table(table, copy)
    again = load_table(copy)
    assert again.to_dict() == table.to_dict()
    spec = table_space(again).random_spec(1, 10)
    assert predict(spec, again) == predict(spec, table)


def test_interrupted_build_resumes(tmp_path: Path, space_file: Path) -> None:
    out = tmp_path / "lut.json"

    def stop_after_first_batch(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_table(out, space_file, FAST, num_classes=10, progress=stop_after_first_batch, batch=4)
    partial = load_table(out)
    assert len(partial.entries) == 4 and not partial.complete

    seen: list[tuple[int, int]] = []
    table = build_table(
        out, space_file, FAST, num_classes=10, batch=4, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (4, table.expected) and seen[-1] == (table.expected, table.expected)
    assert table.complete and load_table(out).complete
    for key, entry in partial.entries.items():
        assert table.entries[key] == entry  # kept, not measured again


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"num_classes": 100}, "num_classes"),
        ({"config": LatencyConfig(rounds=2, repeats=2, min_warmup=3, max_warmup=3)}, "protocol"),
        ({"resolutions": [40]}, "resolutions"),
    ],
)
def test_resume_refuses_another_table(
    table_file: Path, space_file: Path, changes: dict[str, object], what: str
) -> None:
    kwargs: dict[str, object] = {"config": FAST, "num_classes": 10, **changes}
    with pytest.raises(LutError, match=f"another {what}; it cannot be resumed"):
        build_table(table_file, space_file, **kwargs)  # type: ignore[arg-type]


def test_build_refuses_bad_options(tmp_path: Path, space_file: Path) -> None:
    with pytest.raises(LutError, match="num_classes must be a positive integer"):
        build_table(tmp_path / "x.json", space_file, FAST, num_classes=0)
    with pytest.raises(LutError, match="resolution must be a positive multiple of 8"):
        build_table(tmp_path / "x.json", space_file, FAST, resolutions=[33])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "other"}', "is not a nasctl latency table"),
        ('{"format": "nasctl-lut/1"}', "is malformed"),
    ],
)
def test_load_refuses_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LutError, match=message):
        load_table(path)
    with pytest.raises(LutError, match="cannot read table"):
        load_table(tmp_path / "missing.json")


def test_validate_reports_and_fits(table_file: Path) -> None:
    table = load_table(table_file)
    report = validate_table(table, n=4, seed=0)
    assert report.n == 4 and len(report.rows) == 4
    for block in (report.raw, report.corrected, report.absolute):
        assert set(block) == {
            "within_5",
            "within_10",
            "mape_pct",
            "bias_pct",
            "spearman",
            "kendall",
        }
    assert report.speedup > 1 and report.predict_s_per_arch > 0
    assert (table.correction is not None) == report.stored
    assert report.correction.method in ("scale", "line")
    assert json.loads(json.dumps(report.to_dict()))["n"] == 4
    # Two passes by default: the truth is their median, pass 1 vs pass 2 the ceiling.
    assert report.passes == 2 and report.repeatability is not None
    for row in report.rows:
        first, second = row["measured_passes_us"]
        assert row["measured_us"] == pytest.approx((first + second) / 2)
    firsts = [r["measured_passes_us"][0] for r in report.rows]
    seconds = [r["measured_passes_us"][1] for r in report.rows]
    assert report.repeatability == accuracy(seconds, firsts)
    one = validate_table(table, n=3, seed=0, passes=1)
    assert one.repeatability is None and len(one.rows[0]["measured_passes_us"]) == 1
    with pytest.raises(LutError, match="n must be an integer >= 3"):
        validate_table(table, n=2)
    with pytest.raises(LutError, match="passes must be an integer >= 1"):
        validate_table(table, n=3, passes=0)


def test_accuracy_and_fit_closed_forms() -> None:
    m = np.array([100.0, 200.0, 300.0, 400.0])
    assert accuracy(m, m) == pytest.approx(
        {"within_5": 1, "within_10": 1, "mape_pct": 0, "bias_pct": 0, "spearman": 1, "kendall": 1}
    )
    a = accuracy(m * np.array([1.04, 1.08, 0.8, 1.0]), m)
    assert a["within_5"] == 0.5 and a["within_10"] == 0.75
    assert a["mape_pct"] == pytest.approx((4 + 8 + 20 + 0) / 4)
    assert _fit(m, 2 * m + 3) == pytest.approx((2.0, 3.0))
    assert _fit(np.full(3, 5.0), np.array([6.0, 7.0, 8.0])) == pytest.approx((1.0, 2.0))
    assert _fit_scale(m, 1.2 * m) == pytest.approx((1.2, 0.0))
    noisy = 1.2 * m
    noisy[0] *= 3  # one outlier moves least squares, not the median ratio
    assert _fit_scale(m, noisy) == pytest.approx((1.2, 0.0))


def test_baselines_are_in_the_table_unless_left_out(tmp_path: Path, space_file: Path) -> None:
    with_baselines = build_table(tmp_path / "a.json", space_file, FAST, num_classes=10)
    without = build_table(tmp_path / "b.json", space_file, FAST, num_classes=10, baselines=False)
    assert with_baselines.expected > without.expected
    for name in baseline_names():
        spec = get_baseline(name, 1.0, max(with_baselines.resolutions), 10)
        assert predict(spec, with_baselines) > 0
    with pytest.raises(LutError, match="no entry for stem"):
        predict(get_baseline("mobilenet_v1", 1.0, max(without.resolutions), 10), without)

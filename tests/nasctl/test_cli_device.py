from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from estimators import _data
from nasctl.cli import app
from search_space import SearchSpace, format_arch
from tests.results.conftest import TINY_SPACE

runner = CliRunner()
TINY = (
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s2_e2_c16_se0.25_hs,"
    "ir_k3_s2_c24_re,ir_k3_s2_c32_re,head_d0.2"
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    _data._MEMORY.clear()


#: Every command that trains or scores takes --device; each refuses CUDA here before it
#: reads a file, loads data or opens a study (none of those named below exists).
COMMANDS = [
    ["train", TINY, "--out", "{tmp}/run"],
    ["eval", TINY, "--checkpoint", "{tmp}/missing.pt"],
    ["search", "--runs", "{tmp}/runs"],
    ["compare", "--runs", "{tmp}/runs", "--study", "none"],
    ["supernet", "train", "--out", "{tmp}/sn.pt"],
    ["supernet", "score", TINY, "--supernet", "{tmp}/missing.pt"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "needs CUDA, but torch"),
        ("cuda:1", "needs CUDA, but torch"),
        ("gpu", "device must be cpu, cuda, cuda:N or auto, got 'gpu'"),
    ],
)
def test_device_is_refused_in_one_line_before_any_work(
    command: list[str], device: str, message: str, tmp_path: Path
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = runner.invoke(app, [*args, "--device", device])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["cache"])  # nothing written


def test_train_records_device_and_precision(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", TINY, "--out", str(out), "--epochs", "1", "--batch-size", "128",
            "--threads", "1", "--device", "auto", "--precision", "bf16"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "on cpu/bf16" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cpu/bf16"
    assert torch.load(out / "checkpoint.pt", weights_only=True)["device"] == "cpu/bf16"
    shown = runner.invoke(
        app, ["eval", TINY, "--checkpoint", str(out / "checkpoint.pt"), "-f", "json"]
    )
    assert shown.exit_code == 0, shown.output
    evaluated = json.loads(shown.output[shown.output.index("{") :])
    assert evaluated["trained_on"] == "cpu/bf16" and evaluated["evaluated_on"] == "cpu/fp32"


def test_search_trains_on_device_and_times_on_latency_device(tmp_path: Path) -> None:
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "runs"
    args = ["search", "--space", str(space), "--trials", "2", "--runs", str(out), "--images",
            "64", "--batch-size", "32", "--threads", "1", "--population", "2",
            "--no-baselines", "--device", "cpu", "--precision", "bf16",
            "--latency-device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "search.journal"))
    )
    study = optuna.load_study(study_name="search", storage=storage)
    trained = [t for t in study.trials if "accuracy" in t.user_attrs]
    assert trained and all(t.user_attrs["device"] == "cpu/bf16" for t in trained)
    meta = study.user_attrs["nasctl"]["latency"]
    assert meta["device"] == "cpu" and meta["host"]
    workers = [v for k, v in study.user_attrs.items() if k.startswith("worker:")]
    assert [w["device"] for w in workers] == ["cpu/bf16"]
    rows = (out / "search" / "trials.csv").read_text().splitlines()
    assert "device" in rows[0].split(",") and "cpu/bf16" in rows[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latency-device", "tpu"], "device must be 'cpu' or 'cuda"),
        (["--latency-device", "cuda"], "no CUDA device is present"),
        (["--precision", "fp8"], "fp8"),
    ],
)
def test_search_latency_device_and_precision_are_checked(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["search", "--runs", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output + result.stderr


def test_supernet_file_records_its_device_and_score_shows_it(tmp_path: Path) -> None:
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "sn.pt"
    args = ["supernet", "train", "--space", str(space), "--out", str(out), "--epochs", "1",
            "--train-images", "64", "--batch-size", "32", "--threads", "1",
            "--precision", "bf16"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "on cpu/bf16" in result.output
    arch = format_arch(SearchSpace.from_text(TINY_SPACE).random_spec(0, 10))
    scored = runner.invoke(app, ["supernet", "score", arch, "--supernet", str(out)])
    assert scored.exit_code == 0, scored.output
    said = " ".join(scored.stderr.split())  # the console wraps a long path at any width
    assert "epoch(s) in" in said and "on cpu/bf16" in said, scored.stderr

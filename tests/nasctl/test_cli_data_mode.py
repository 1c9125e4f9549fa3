"""--data-mode on train, eval, search and supernet train; decode progress in a search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from estimators import _data, get_recipe
from nasctl.cli import app
from results import SearchConfig, run_search

runner = CliRunner()
TINY = "r32_n3,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s2_c24_re,head_d0.0"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    _data._MEMORY.clear()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for name in ("cat", "dog", "owl"):
        (root / name).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def test_train_and_eval_stream_and_match_memory(tmp_path: Path, folder: Path) -> None:
    common = ["--data", str(folder), "--epochs", "1", "--batch-size", "16", "--threads", "1"]
    results = {}
    for mode in ("memory", "stream"):
        out = tmp_path / mode
        done = runner.invoke(app, ["train", TINY, "--out", str(out), *common, "--data-mode", mode])
        assert done.exit_code == 0, done.output
        assert ("streamed from disk" in done.output) == (mode == "stream")
        results[mode] = json.loads((out / "metrics.json").read_text())
        _data._MEMORY.clear()
    assert results["memory"]["top1"] == results["stream"]["top1"]
    shown = runner.invoke(
        app,
        ["eval", TINY, "--checkpoint", str(tmp_path / "stream" / "checkpoint.pt"),
         "--data", str(folder), "--data-mode", "stream", "--format", "json"],
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output


@pytest.mark.parametrize("command", [["train", TINY], ["search"], ["supernet", "train"]])
def test_a_bad_data_mode_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    done = runner.invoke(app, [*command, "--data-mode", "disk", "--out", str(tmp_path / "o")])
    assert done.exit_code == 2
    assert "disk" in done.output and "Traceback" not in done.output


def test_a_search_streams_and_reports_decoding(folder: Path, tmp_path: Path) -> None:
    events = []
    config = SearchConfig(study="s", target="flops", space_path=Path("tiny"), data=str(folder),
                          data_mode="stream", trials=1, population=2,
                          recipe=get_recipe("search", batch_size=16), images_per_candidate=32,
                          baselines=False, threads=1)  # fmt: skip
    study = run_search(config, tmp_path / "out", None, events.append)
    assert len(study.trials) == 1
    decoding = [e.message for e in events if e.kind == "data"]
    assert decoding and decoding[-1] == "decoding images at 32x32: 60/60"
    _data._MEMORY.clear()
    assert _data.load_data(folder, 32, mode="stream").streamed  # the cache is there

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import estimators
from estimators import _data
from nasctl.cli import app
from tests.conftest import DIGITS_VAL_IMAGES, is_share_of

runner = CliRunner()
TINY = (
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s2_e2_c16_se0.25_hs,"
    "ir_k3_s2_c24_re,ir_k3_s2_c32_re,head_d0.2"
)
FAST = ["--batch-size", "128", "--threads", "1"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    _data._MEMORY.clear()


def _train(out: Path, *extra: str):
    return runner.invoke(app, ["train", TINY, "--out", str(out), "--epochs", "1", *FAST, *extra])


def test_train_writes_checkpoint_spec_metrics_and_eval_reads_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _train(out)
    assert result.exit_code == 0, result.output
    assert "digits: 1,151 train / 287 val / 359 test images" in result.output
    assert "top-1" in result.output
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "spec.json", "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(is_share_of(metrics[k], DIGITS_VAL_IMAGES) for k in ("top1", "top5"))
    assert metrics["top1"] <= metrics["top5"] and len(metrics["history"]) == 1
    assert metrics["recipe"]["batch_size"] == 128 and len(metrics["per_class"]) == 10

    shown = runner.invoke(
        app,
        ["eval", str(out / "spec.json"), "--checkpoint", str(out / "checkpoint.pt"), "-f", "json"],
    )
    assert shown.exit_code == 0, shown.output
    evaluated = json.loads(shown.output[shown.output.index("{") :])
    assert evaluated["top1"] == pytest.approx(metrics["top1"])
    assert set(evaluated["per_class"]) == {str(i) for i in range(10)}
    table = runner.invoke(app, ["eval", TINY, "--checkpoint", str(out / "checkpoint.pt")])
    assert table.exit_code == 0 and "Per class" in table.output


def test_resume_continues_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(out).exit_code == 0
    again = _train(out)
    assert again.exit_code == 2 and "pass --resume" in again.output
    done = runner.invoke(app, ["train", TINY, "--out", str(out), "--resume", *FAST])
    assert done.exit_code == 2 and "pass --epochs above that" in done.output
    more = runner.invoke(
        app, ["train", TINY, "--out", str(out), "--resume", "--epochs", "2", *FAST]
    )
    assert more.exit_code == 0, more.output
    assert "resuming at epoch 2" in more.output
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2


def test_ctrl_c_saves_a_checkpoint_that_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fit = estimators.fit  # the command imports it when it runs

    def interrupted_fit(state, data, on_progress=None, **kw):
        def progress(p):
            if p.batch == 3:
                raise KeyboardInterrupt
            on_progress(p)

        return real_fit(state, data, on_progress=progress, **kw)

    out = tmp_path / ("a_run_folder_with_a_long_name_" * 4)  # the line must not wrap
    monkeypatch.setattr(estimators, "fit", interrupted_fit)
    stopped = _train(out)
    assert stopped.exit_code == 130
    line = next(ln for ln in stopped.output.splitlines() if "interrupted at" in ln)
    assert "interrupted at epoch 1, batch 3" in line and str(out) in line
    assert line.rstrip().endswith("--resume"), line
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    monkeypatch.setattr(estimators, "fit", real_fit)
    resumed = runner.invoke(app, ["train", TINY, "--out", str(out), "--resume", *FAST])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at epoch 1, batch 3" in resumed.output


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "is not 'digits', 'cifar10' or an existing directory"),
        ("single", "single class"),
        ("empty", "has no images"),
    ],
)
def test_bad_data_is_one_line_and_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    root = tmp_path / "d"
    if setup == "single":
        _png(root / "a" / "1.png", 1)
    elif setup == "empty":
        _png(root / "a" / "1.png", 1)
        (root / "b").mkdir()
    result = runner.invoke(app, ["train", TINY, "--data", str(root), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_image_folder_with_corrupt_file_trains_and_warns(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    for c, value in (("dark", 20), ("light", 230)):
        for i in range(6):
            _png(root / c / f"{i}.png", value + i)
    (root / "dark" / "bad.png").write_bytes(b"broken")
    result = runner.invoke(
        app,
        [
            "train",
            "mobilenet_v3_small",
            "--width",
            "0.25",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "o"),
            "--epochs",
            "1",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image(s): dark/bad.png" in result.output
    assert json.loads((tmp_path / "o" / "spec.json").read_text())["num_classes"] == 2


def test_eval_refuses_a_different_architecture(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(out).exit_code == 0
    result = runner.invoke(
        app, ["eval", "mobilenet_v2", "--checkpoint", str(out / "checkpoint.pt")]
    )
    assert result.exit_code == 2 and "does not match" in result.output
    missing = runner.invoke(app, ["eval", TINY, "--checkpoint", str(tmp_path / "nope.pt")])
    assert missing.exit_code == 2 and "does not exist" in missing.output

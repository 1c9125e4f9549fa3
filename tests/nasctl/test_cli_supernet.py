from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import estimators
from estimators import _data, load_supernet
from nasctl.cli import app
from search_space import SearchSpace, builtin_space_text, format_arch
from tests.conftest import DIGITS_VAL_IMAGES, is_share_of

runner = CliRunner()
QUICK = ["--train-images", "64", "--batch-size", "32", "--threads", "1"]
TINY = SearchSpace.from_text(builtin_space_text("tiny"))
ARCHS = [format_arch(TINY.random_spec(seed, 10)) for seed in range(2)]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tiny.toml").write_text(builtin_space_text("tiny"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    _data._MEMORY.clear()


def _train(tmp_path: Path, *extra: str):
    space = str(tmp_path / "tiny.toml")
    out = str(tmp_path / "sn.pt")
    return runner.invoke(
        app, ["supernet", "train", "--space", space, "--out", out, "--epochs", "1", *QUICK, *extra]
    )


def test_train_writes_a_file_that_score_reads(tmp_path: Path) -> None:
    result = _train(tmp_path)
    assert result.exit_code == 0, result.output
    assert "epoch 1/1: loss" in result.output and "val top-1 largest" in result.output
    assert "wrote" in result.output and not (tmp_path / "sn.pt.tmp").exists()
    supernet = load_supernet(tmp_path / "sn.pt")
    assert supernet.epochs_done == 1.0 and supernet.space == TINY

    scored = runner.invoke(
        app,
        ["supernet", "score", *ARCHS, "--supernet", str(tmp_path / "sn.pt"), "-f", "json"],
    )
    assert scored.exit_code == 0, scored.output
    rows = json.loads(scored.stdout[scored.stdout.index("[") :])
    assert [r["arch"] for r in rows] == ARCHS
    assert all(is_share_of(r["top1"], DIGITS_VAL_IMAGES) and r["resolution"] == 32 for r in rows)
    table = runner.invoke(
        app, ["supernet", "score", ARCHS[0], "--supernet", str(tmp_path / "sn.pt")]
    )
    assert table.exit_code == 0 and "Supernet top-1" in table.output


def test_the_same_command_again_resumes_or_extends(tmp_path: Path) -> None:
    assert _train(tmp_path).exit_code == 0
    again = _train(tmp_path)
    assert again.exit_code == 0 and "is trained: 1 epoch(s)" in again.output
    more = _train(tmp_path, "--epochs", "2")
    assert more.exit_code == 0, more.output
    assert "resuming" in more.output and "epoch 2/2: loss" in more.output
    assert load_supernet(tmp_path / "sn.pt").epochs_done == 2.0


def test_ctrl_c_saves_and_the_same_command_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fit = estimators.fit_supernet  # the command imports it when it runs

    def interrupted_fit(state, data, on_progress=None, **kw):
        def progress(p):
            on_progress(p)
            if p.step == 1:
                raise KeyboardInterrupt

        return real_fit(state, data, on_progress=progress, **kw)

    monkeypatch.setattr(estimators, "fit_supernet", interrupted_fit)
    stopped = _train(tmp_path)
    assert stopped.exit_code == 130
    assert "interrupted at epoch 1, batch 1" in stopped.output
    assert load_supernet(tmp_path / "sn.pt").epochs_done == 0.5
    monkeypatch.setattr(estimators, "fit_supernet", real_fit)
    resumed = _train(tmp_path)
    assert resumed.exit_code == 0, resumed.output
    assert "at epoch 1, batch 1" in resumed.output
    assert load_supernet(tmp_path / "sn.pt").epochs_done == 1.0


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_a_file_of_another_space_data_or_seed_is_refused(tmp_path: Path) -> None:
    assert _train(tmp_path).exit_code == 0
    other = tmp_path / "other.toml"
    other.write_text(builtin_space_text("tiny").replace("resolutions = [32]", "resolutions = [40]"))
    space = runner.invoke(
        app,
        ["supernet", "train", "--space", str(other), "--out", str(tmp_path / "sn.pt"), *QUICK],
    )
    assert space.exit_code == 2 and "holds a supernet of space 'tiny'" in space.output
    seed = _train(tmp_path, "--seed", "1")
    assert seed.exit_code == 2 and "was trained with --seed 0, not 1" in seed.output
    root = tmp_path / "shapes"
    for c, value in (("dark", 20), ("light", 230)):
        for i in range(6):
            _png(root / c / f"{i}.png", value + i)
    data = _train(tmp_path, "--data", str(root))
    assert data.exit_code == 2 and "was trained on data 'digits'" in data.output
    assert "Traceback" not in data.output


def test_score_refuses_an_arch_outside_the_space(tmp_path: Path) -> None:
    assert _train(tmp_path).exit_code == 0
    spec = TINY.random_spec(0, 10)
    bad = format_arch(spec).replace("ir_k3", "ir_k7", 1).replace("ir_k5", "ir_k7", 1)
    result = runner.invoke(app, ["supernet", "score", bad, "--supernet", str(tmp_path / "sn.pt")])
    assert result.exit_code == 2 and "blocks[0].kernel must be one of 3, 5" in result.output
    v2 = runner.invoke(
        app, ["supernet", "score", "mobilenet_v2", "--supernet", str(tmp_path / "sn.pt")]
    )
    assert v2.exit_code == 2 and "stem.act must be 'hswish'" in v2.output


#: Bad input for `nasctl supernet` (the same contract as test_cli_bad_input.py).
BAD = [
    (["supernet", "train", "--out", "s.pt", "--threads", "0"],
     "--threads must be an integer from 1"),
    (["supernet", "train", "--out", "s.pt", "--save-every", "0"], "--save-every must be > 0"),
    # The recipe names its fields (recipe.epochs); the CLI names the flags.
    (["supernet", "train", "--out", "s.pt", "--epochs", "0"], "--epochs must be an integer >= 1"),
    (["supernet", "train", "--out", "s.pt", "--lr", "0"], "--lr must be > 0, got 0.0"),
    (["supernet", "train", "--out", "s.pt", "--lr", "-1"], "--lr must be a finite number >= 0"),
    (["supernet", "train", "--out", "s.pt", "--random-subnets", "-1"],
     "--random-subnets must be an integer from 0"),
    (["supernet", "train", "--out", "s.pt", "--space", "missing.toml"], "cannot read space file"),
    (["supernet", "train", "--out", "s.pt", "--space", "bin.toml"], "not UTF-8 text"),
    (["supernet", "train", "--out", "garbage.pt"], "supernet file 'garbage.pt' cannot be read"),
    (["supernet", "train", "--out", "s.pt", "--data", "nowhere"], "is not 'digits', 'cifar10'"),
    (["supernet", "score", "x", "--supernet", "missing.pt"], "file 'missing.pt' does not exist"),
    (["supernet", "score", "x", "--supernet", "garbage.pt"], "cannot be read"),
    (["supernet", "score", "x", "--supernet", "other.pt"], "is not a nasctl supernet file"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe bad")
    (tmp_path / "garbage.pt").write_text('{"x":')
    torch.save({"format": "nasctl-checkpoint/1"}, tmp_path / "other.pt")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]

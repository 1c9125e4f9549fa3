"""Every command fed wrong values exits 2 with one line on stderr (no traceback).

Extends the tables in test_cli_search.py, test_cli_table.py, test_cli_latency.py and
test_cli_train.py with the cases they do not cover: unreadable files (a directory, bytes
that are not UTF-8, a corrupt checkpoint or journal), bad storage URLs, out-of-range
numbers, budgets no architecture can meet.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nasctl.cli import app
from search_space import build_model, parse_arch

runner = CliRunner()
TINY = "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0"
QUICK = ["--trials", "1", "--images", "32", "--no-baselines"]
PICTURE = ["--image", "img.png", "--out", "v"]


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe bad")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe")
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "dir.toml").mkdir()
    (tmp_path / "garbage.pt").write_text('{"x":')
    (tmp_path / "lut.json").write_text("{oops")
    (tmp_path / "corrupt.journal").write_bytes(b"\x00\x01junk")
    (tmp_path / "text.jpg").write_text("not an image")
    Image.new("RGB", (40, 40), (90, 120, 30)).save(tmp_path / "img.png")
    torch.save(build_model(parse_arch(TINY)).state_dict(), tmp_path / "tiny.pt")
    return tmp_path


BAD = [
    # train / eval
    (["train", TINY, "--epochs", "-1"], "--epochs must be an integer from 0 to"),
    (["train", TINY, "--lr", "-1"], "--lr must be a finite number >= 0, got -1.0"),
    (["train", TINY, "--threads", "0"], "--threads must be an integer from 1 to"),
    (["train", "mobilenet_v2", "--width", "0"], "width must be a number in (0, 4]"),
    (["train", TINY, "-r", "0"], "resolution must be a positive multiple of 8"),
    (["train", "bin.json"], "is not UTF-8 text"),
    (["train", "dir.json"], "cannot read spec file 'dir.json'"),
    (["eval", TINY, "--checkpoint", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["eval", TINY, "--checkpoint", "garbage.pt"], "garbage.pt"),
    # latency / lut
    (["latency", TINY, "--repeats", "0"], "repeats must be a positive integer"),
    (["latency", TINY, "-r", "0"], "resolution must be a positive multiple of 8"),
    (["latency", TINY, "--num-classes", "-1"], "--num-classes must be an integer from 0"),
    (["latency", TINY, "--reference", "nonsense"], "ARCH 'nonsense' is not a baseline"),
    (["lut", "validate", "--lut", "lut.json"], "is not valid JSON"),
    (["lut", "validate", "--lut", "dir.json"], "cannot read table 'dir.json'"),
    (["lut", "build", "--space", "bin.toml", "--out", "t.json"], "cannot read space file"),
    (["lut", "build", "--space", "missing.toml", "--out", "t.json"], "cannot read space file"),
    # export
    (["export", TINY, "-f", "json", "-o", "e.json", "--checkpoint", "missing.pt"],
     "does not exist"),
    (["export", TINY, "-f", "json", "-o", "e.json", "--checkpoint", "garbage.pt"],
     "cannot be read"),
    (["export", TINY, "-f", "onnx", "-o", "e.onnx", "--opset", "5"], "opset must be"),
    (["export", TINY, "-f", "json", "-o", "e.json", "--tolerance", "-1"], "tolerance must be"),
    (["export", "-f", "json", "-o", "e.json", "--study", "nope", "--runs", "."],
     "no study 'nope'"),
    (["export", "-f", "json", "-o", "e.json", "--study", "nope", "--storage", "bad"],
     "storage must be an Optuna storage URL"),
    (["export", "nonsense", "-f", "json", "-o", "e.json"], "ARCH 'nonsense' is not a baseline"),
    # compare (bad --top and --baseline-resolution: tests/results/test_compare.py)
    (["compare", "--study", "nope", "--runs", "."], "no study 'nope'"),
    (["compare", "--study", "x", "--storage", "bad"], "storage must be an Optuna storage URL"),
    (["compare", "--study", "corrupt", "--runs", "."], "not an Optuna journal file"),
    # results
    (["results", "show", "--study", "x", "--storage", "nope"], "storage must be an Optuna"),
    (["results", "show", "--study", "x", "--storage", "sqlite:////no/such/dir/x.db"],
     "storage file '/no/such/dir/x.db' does not exist"),
    (["results", "show", "--study", "corrupt", "--runs", "."], "not an Optuna journal file"),
    (["results", "pareto", "--study", "x", "--storage", "mysql://u@127.0.0.1:1/x"],
     "cannot open storage"),
    (["results", "plot", "--study", "x", "--storage", "corrupt.journal"],
     "not an Optuna journal file"),
    # classic reference networks
    (["table", "vgg16", "-r", "16"], "vgg16 cannot take resolution 16: its map vanishes at pool5"),
    (["table", "lenet5", "--num-classes", "0"], "--num-classes must be a positive integer"),
    (["table", "resnet19"], "a classic network (lenet5, alexnet"),
    (["latency", "alexnet", "-r", "64"], "alexnet cannot take resolution 64"),
    (["train", "vgg16"], "vgg16 is a classic reference network, not a MobileNet-style"),
    # arch plot
    (["arch", "plot", TINY, "--out", "x.txt"], "--out must be a .png file"),
    (["arch", "plot", TINY, "--out", "x.png", "--lut", "missing.json"],
     "cannot read table 'missing.json'"),
    (["arch", "plot", TINY, "--out", "x.png", "--lut", "lut.json"], "is not valid JSON"),
    (["arch", "plot", TINY, "--out", "bin.json/x.png"],
     "--out 'bin.json/x.png' cannot be written: 'bin.json' is a file"),
    (["arch", "plot", "vgg16", "--out", "x.png"], "vgg16 is a classic reference network"),
    # visualize
    (["visualize", TINY, "--checkpoint", "missing.pt", *PICTURE], "'missing.pt' does not exist"),
    (["visualize", TINY, "--checkpoint", "garbage.pt", *PICTURE], "cannot be read"),
    (["visualize", "mobilenet_v2", "-r", "32", "--checkpoint", "tiny.pt", *PICTURE],
     "checkpoint 'tiny.pt' does not hold weights of r32_n1000,stem_k3_s2_c32_r6"),
    (["visualize", "lenet5", "--checkpoint", "tiny.pt", *PICTURE],
     "checkpoint 'tiny.pt' does not hold weights of lenet5"),
    (["visualize", "--checkpoint", "tiny.pt", *PICTURE], "holds weights only; pass ARCH"),
    (["visualize", TINY, "--checkpoint", "tiny.pt", "--image", "text.jpg", "--out", "v"],
     "image 'text.jpg' cannot be read"),
    (["visualize", TINY, "--checkpoint", "tiny.pt", "--image", "no.jpg", "--out", "v"],
     "image 'no.jpg' does not exist"),
    (["visualize", TINY, "--checkpoint", "tiny.pt", *PICTURE, "--layers", "blocks.9"],
     "unknown layer 'blocks.9'; layers of this network: stem, blocks.0"),
    (["visualize", TINY, "--checkpoint", "tiny.pt", *PICTURE, "--layers", "head.classifier"],
     "not feature maps"),
    (["visualize", TINY, "--checkpoint", "tiny.pt", *PICTURE, "--maps", "0"],
     "maps per layer must be a positive integer"),
    (["visualize", TINY, "--checkpoint", "tiny.pt", "--image", "img.png", "--out", "bin.json"],
     "--out 'bin.json' is a file, not a directory"),
    # search
    (["search", "--population", "1"], "population must be at least 2"),
    (["search", "--timeout", "0"], "timeout must be positive"),
    (["search", "--images", "0"], "images per candidate must be positive"),
    (["search", "--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["search", "--threads", "0"], "--threads must be an integer from 1 to"),
    (["search", "--seed", "-1"], "--seed must be an integer from 0 to"),
    (["search", "--space", "dir.toml"], "cannot read space file 'dir.toml'"),
    (["search", "--space", "bin.toml"], "not UTF-8 text"),
    (["search", "--storage", "sqlite:////no/such/dir/x.db"], "cannot open storage"),
    (["search", "--storage", "corrupt.journal"], "not an Optuna journal file"),
    (["search", "--max-params", "0.0001"], "--max-params 0.0001 cannot be met"),
    (["search", "--max-latency", "0.00001", *QUICK], "--max-latency 1e-05 cannot be met"),
    (["search", "--lut", "lut.json", "--latency", "lut"], "is not valid JSON"),
    (["search", "--study", "a b"], "study must be a name without spaces"),
    # search --accuracy
    (["search", "--eta", "3"], "--eta only applies to --accuracy halving"),
    (["search", "--accuracy", "train", "--min-fidelity", "0.1"],
     "--min-fidelity only applies to --accuracy halving"),
    (["search", "--accuracy", "halving", "--eta", "1"], "eta must be an integer >= 2"),
    (["search", "--accuracy", "halving", "--min-fidelity", "0"],
     "--min-fidelity must be a fraction"),
    (["search", "--accuracy", "halving", "--min-fidelity", "1.5"],
     "--min-fidelity must be a fraction"),
    (["search", "--accuracy", "halving", "--eta", "4", "--min-fidelity", "0.5"],
     "it must be at most 1/eta = 0.25"),
    (["search", "--accuracy", "halving", "--images", "64", "--min-fidelity", "0.01"],
     "the lowest rung trains on 2 images, less than one batch of 64"),
    (["search", "--accuracy", "supernet"], "--accuracy supernet needs --supernet FILE"),
    (["search", "--supernet", "garbage.pt"], "--supernet only applies to --accuracy supernet"),
    (["search", "--accuracy", "halving", "--supernet", "garbage.pt"],
     "--supernet only applies to --accuracy supernet (got --accuracy halving)"),
    (["search", "--accuracy", "supernet", "--supernet", "missing.pt"],
     "supernet file 'missing.pt' does not exist"),
    (["search", "--accuracy", "supernet", "--supernet", "garbage.pt"], "cannot be read"),
    (["search", "--accuracy", "supernet", "--supernet", "garbage.pt", "--eta", "2"],
     "--eta only applies to --accuracy halving"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(files: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["search", "--sampler", "grid"], ["train", TINY, "--preset",
                                  "x"], ["latency", TINY, "--backend", "tflite"],
                                  ["search", "--accuracy", "guess"]])  # fmt: skip
def test_unknown_choices_are_usage_errors(args: list[str]) -> None:
    # Click's own usage error (exit 2), naming the bad value; not a traceback.
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and args[-1] in result.output
    assert "Traceback" not in result.output


def test_counts_print_in_integer_arithmetic() -> None:
    from nasctl._cmd_table import _megabytes, _millions

    # Through a float, 2**60 + 1 MACs would print as ...606.847 (the 1 lost, digits invented).
    assert _millions(2**60 + 1) == "1,152,921,504,606.847"
    assert _millions(1_499) == "0.001" and _millions(1_500) == "0.002"
    assert _megabytes(3_504_872) == "3.50"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["table", "mobilenet_v2", "-r", "100000000"], "at most 2048, got 100000000"),
        (["table", "mobilenet_v2", "--num-classes", "1000000"], "at most 100,000"),
        (["latency", TINY, "--threads", "\u00e9"], "nasctl latency: Invalid value for '--threads'"),
        (["search", "--timeout", "nan"], "--timeout must be a finite number >= 0, got nan"),
        (["search", "--max-flops", "inf"], "--max-flops must be a finite number >= 0, got inf"),
        (["export", TINY, "-f", "onnx", "-o", "e.onnx", "--threads", "100000"],
         "--threads must be an integer from 1 to"),
        (["search", "--runs", "/proc/nasctl-runs"], "no file can be created in '/proc'"),
        (["train", TINY, "--out", "bin.json"], "--out 'bin.json' is a file, not a directory"),
        (["lut", "build", "-o", "dir.json"], "--out 'dir.json' is a directory, not a file"),
        (["supernet", "train", "--out", "/proc/s.pt"], "no file can be created in '/proc'"),
        (["export", TINY, "-f", "pt", "-o", "e", "--checkpoint", "empty.pt"],
         "checkpoint 'empty.pt' cannot be read as tensors (weights_only): EOFError"),
        (["export", "mobilenet_v2", "-f", "pt", "-o", "e", "--checkpoint", "tiny.pt"],
         "checkpoint 'tiny.pt': state_dict does not fit the architecture"),
        (["lut", "validate", "--lut", "bin.json"], "table 'bin.json' is not valid JSON: not UTF-8"),
        (["lut", "validate", "--lut", "empty.pt"], "table 'empty.pt' is not valid JSON: the file"),
        (["arch", "plot", TINY, "--out", "a.png", "--lut", "bin.json"], "not UTF-8"),
    ],
)  # fmt: skip
def test_issue_18_inputs_are_one_line_and_write_nothing(
    files: Path, args: list[str], message: str
) -> None:
    (files / "empty.pt").write_bytes(b"")
    before = sorted(p.name for p in files.iterdir())
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert sorted(p.name for p in files.iterdir()) == before

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasctl.cli import app
from results import EXPORT_FORMAT, load_pt
from search_space import ArchSpec, build_model, format_arch, get_baseline, parse_arch

runner = CliRunner()
SMALL = ["mobilenet_v3_small", "-r", "32", "--num-classes", "10"]
SPEC = get_baseline("mobilenet_v3_small", 1.0, 32, 10)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine more threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(*args: str):
    return runner.invoke(app, list(args))


# Every format of every baseline is exported in tests/results/test_export.py; here the
# command's wiring (torchscript and pt run below with a checkpoint).
@pytest.mark.parametrize("fmt", ["json", "arch", "py", "onnx"])
def test_export_every_format_without_checkpoint(fmt: str, tmp_path: Path) -> None:
    result = run("export", *SMALL, "--format", fmt, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and format_arch(SPEC) in result.stdout
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written[0].startswith("model.")
    if fmt in ("json", "arch"):
        assert "parses back" in result.stdout
        assert "the weights are random" not in result.stderr
    else:
        assert "max abs diff" in result.stdout
        assert "the weights are random (seed 0" in result.stderr
        runtime = "onnxruntime" if fmt == "onnx" else "torch"
        assert f"latency of the exported file ({runtime}, 1 thread, batch 1" in result.stdout
    if fmt == "json":
        assert ArchSpec.from_json((tmp_path / "out" / "model.json").read_text()) == SPEC
    if fmt == "arch":
        assert parse_arch((tmp_path / "out" / "model.arch").read_text().strip()) == SPEC
    if fmt == "py":
        assert written == ["model.py", "model_weights.pt"]


def test_export_with_training_checkpoint_needs_no_arch(tmp_path: Path) -> None:
    model = build_model(SPEC, seed=5)
    ckpt = tmp_path / "train.pt"
    torch.save(
        {"format": "nasctl-checkpoint/1", "spec": SPEC.to_dict(), "model": model.state_dict()}, ckpt
    )
    result = run("export", "--checkpoint", str(ckpt), "-f", "pt", "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 0, result.output
    assert "the weights are random" not in result.stderr
    spec, loaded = load_pt(tmp_path / "m.pt")
    assert spec == SPEC
    assert torch.load(tmp_path / "m.pt", weights_only=True)["format"] == EXPORT_FORMAT
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_export_bare_state_dict_with_arch_string(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pt"
    torch.save(build_model(SPEC, seed=1).state_dict(), ckpt)
    result = run("export", format_arch(SPEC), "--checkpoint", str(ckpt), "-f", "torchscript",
                 "-o", str(tmp_path / "m.torchscript.pt"), "--freeze")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "torch.jit.load" in result.stdout


ERRORS = [
    ("no arch", ["-f", "onnx", "-o", "x"], "ARCH is required unless --checkpoint"),
    ("bad arch", ["nonsense", "-f", "onnx", "-o", "x"], "is not a baseline"),
    ("opset", [*SMALL, "-f", "onnx", "-o", "x", "--opset", "13"], "opset must be an integer >= 17"),
    ("py suffix", [*SMALL, "-f", "py", "-o", "x.txt"], "out must end with .py"),
    (
        "missing checkpoint",
        [*SMALL, "-f", "pt", "-o", "x", "--checkpoint", "nope.pt"],
        "does not exist",
    ),
]


@pytest.mark.parametrize(("args", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_export_errors_are_one_line_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("export", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_export_checkpoint_of_another_arch_and_weights_only(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pt"
    torch.save({"model": build_model(SPEC).state_dict(), "spec": SPEC.to_dict()}, ckpt)
    result = run("export", "mobilenet_v2", "-r", "32", "--num-classes", "10",
                 "--checkpoint", str(ckpt), "-f", "onnx", "-o", str(tmp_path))  # fmt: skip
    assert result.exit_code == 2 and "different architecture" in result.stderr
    torch.save(build_model(SPEC).state_dict(), ckpt)
    result = run("export", "--checkpoint", str(ckpt), "-f", "onnx", "-o", str(tmp_path))
    assert result.exit_code == 2 and "holds weights only; pass ARCH" in result.stderr


def test_export_bad_format_is_refused_by_the_parser() -> None:
    result = run("export", *SMALL, "-f", "tflite", "-o", "x")
    assert result.exit_code == 2

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasctl.cli import app
from results import EXPORT_FORMAT, load_pt
from search_space import ArchSpec, build_model, format_arch, get_baseline, parse_arch
from tests.results.test_export import COMPARE_ROWS, write_compare_folder

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


def test_export_timm_writes_a_folder_and_refuses_in_one_line(tmp_path: Path) -> None:
    result = run("export", *SMALL, "-f", "timm", "-o", str(tmp_path / "t"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "load_timm.py",
        "timm_arch.json",
        "timm_weights.pt",
    ]
    assert "checked" in result.stdout and "timm" in result.stdout
    arch = "r32_n10,stem_k3_s1_c16_re,ir_k3_s2_e3_c24_re,head_d0"
    result = run("export", arch, "-f", "timm", "-o", str(tmp_path / "u"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: timm cannot express this spec: stem.stride is 1; timm's stems are stride 2"
    ]
    assert not (tmp_path / "u").exists()


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


def test_export_compare_best_ships_the_winner_with_its_weights(tmp_path: Path) -> None:
    import json

    import numpy as np
    import onnxruntime as ort

    from results import read_checkpoint

    write_compare_folder(tmp_path / "runs" / "s" / "compare", COMPARE_ROWS)
    result = run("export", "--study", "s", "--runs", str(tmp_path / "runs"), "--compare-best",
                 "-f", "onnx", "-o", str(tmp_path / "ship"), "--no-time")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "compare winner of study 's': trial_2 (test top-1 0.8000" in result.stdout
    assert "UNTRAINED" not in result.stderr and "records no input mean" not in result.stderr
    assert "recorded for deployment: 32 px, mean (" in result.stdout
    # The file holds trial_2's trained weights (not random ones) and what deployment needs.
    state, spec = read_checkpoint(tmp_path / "runs" / "s" / "compare" / "models" / "trial_2.pt")
    assert spec is not None
    model = build_model(spec)
    model.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model.eval()(x).numpy()
    session = ort.InferenceSession(str(tmp_path / "ship" / "model.onnx"))
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["weights"] == "trained" and meta["arch"] == format_arch(spec)
    assert json.loads(meta["classes"]) == [str(i) for i in range(10)]
    assert meta["resolution"] == "32" and len(json.loads(meta["mean"])) == 3


def test_export_compare_best_without_a_winner_or_compare(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = ["--study", "s", "--runs", str(runs), "--compare-best", "-f", "onnx", "-o", "x"]
    missing = run("export", *args)
    assert missing.exit_code == 2 and "no compare results at" in missing.stderr
    write_compare_folder(runs / "s" / "compare", [("trial_1", 0.9, 1.2, "")])
    none = run("export", *args)
    assert none.exit_code == 2 and "beats a baseline" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


STUDY = ["--study", "s", "--runs", "runs"]
UNTRAINED_ERRORS = [
    ("trial", [*STUDY, "--trial", "3", "-f", "onnx"],
     "--checkpoint runs/s/compare/models/trial_3.pt"),
    ("best", [*STUDY, "--best", "-f", "pt"], "would be exported with random weights"),
    ("best under", [*STUDY, "--best-under", "5", "-f", "py"], "or --untrained to export"),
    ("two picks", [*STUDY, "--best", "--compare-best", "-f", "onnx"], "give exactly one of"),
    ("best and ckpt", [*STUDY, "--compare-best", "--checkpoint", "c.pt", "-f", "onnx"],
     "drop --checkpoint"),
    ("no study", ["--compare-best", "-f", "onnx"], "need --study NAME"),
    ("untrained ckpt", [*SMALL, "--untrained", "--checkpoint", "c.pt", "-f", "onnx"],
     "--untrained contradicts"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"), [e[1:] for e in UNTRAINED_ERRORS], ids=[e[0] for e in UNTRAINED_ERRORS]
)
def test_export_of_a_trial_without_weights_is_refused(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anything is read or written: a search's trial exported without weights would
    be random weights passing for the result."""
    monkeypatch.chdir(tmp_path)
    result = run("export", *args, "-o", "out")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_export_untrained_trial_is_allowed_on_purpose(tmp_path: Path, monkeypatch) -> None:
    """--untrained lifts the refusal: the command goes on to read the study."""
    monkeypatch.chdir(tmp_path)
    result = run("export", *STUDY, "--trial", "3", "--untrained", "-f", "onnx", "-o", "out")
    assert result.exit_code == 2 and "no study 's' under 'runs'" in result.stderr

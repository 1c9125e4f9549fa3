"""Formats exported into one folder keep their own files: py writes model.py and
model_weights.pt, pt writes model.pt, and the generated load_model reads either."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasctl.cli import app
from results import load_pt
from search_space import build_model, get_baseline

runner = CliRunner()
SMALL = ["mobilenet_v3_small", "-r", "32", "--num-classes", "10"]
SPEC = get_baseline("mobilenet_v3_small", 1.0, 32, 10)


@pytest.mark.slow  # two exports, each checked, and model.py run in a fresh interpreter
def test_py_and_pt_exported_into_one_folder_both_work(tmp_path: Path) -> None:
    trained, other = build_model(SPEC, seed=5), build_model(SPEC, seed=6)
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    torch.save(other.state_dict(), tmp_path / "other.pt")
    out = tmp_path / "out"
    for fmt, weights in (("py", "trained.pt"), ("pt", "other.pt")):
        checkpoint = str(tmp_path / weights)
        result = runner.invoke(app, ["export", *SMALL, "-f", fmt, "-o", str(out),
                                     "--checkpoint", checkpoint, "--no-time"])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "model.py", "model_weights.pt"]

    # The py export still runs on its own weights, as a script and as a module.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ran = subprocess.run([sys.executable, str(out / "model.py")], capture_output=True,
                         text=True, timeout=120, env=env)  # fmt: skip
    assert ran.returncode == 0 and "logits (1, 10)" in ran.stdout, ran.stderr
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    load_model = runpy.run_path(str(out / "model.py"))["load_model"]
    with torch.inference_mode():
        assert torch.allclose(load_model()(x), trained.eval()(x), atol=1e-5)
        # ... and reads the pt export beside it too (its state_dict).
        assert torch.allclose(load_model(out / "model.pt")(x), other.eval()(x), atol=1e-5)
        spec, model = load_pt(out / "model.pt")
        assert spec == SPEC and torch.allclose(model(x), other(x), atol=1e-5)

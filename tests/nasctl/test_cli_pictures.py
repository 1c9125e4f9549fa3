"""`nasctl arch plot` and `nasctl visualize`, driven through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from estimators import save_table
from nasctl.cli import app
from search_space import baseline_names, format_arch, load_space, parse_arch
from tests.results.test_archplot import TINY, fake_table

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("name", baseline_names())
def test_arch_plot_baselines(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.png"
    result = run("arch", "plot", name, "--out", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width == 1430


def test_arch_plot_random_arch_with_lut(tmp_path: Path) -> None:
    space = load_space()
    spec = space.spec_from_params(space.random_params(np.random.default_rng(0)), 10)
    lut = tmp_path / "lut.json"
    save_table(fake_table(spec), lut)
    out = tmp_path / "r.png"
    result = run("arch", "plot", format_arch(spec), "--out", str(out), "--lut", str(lut))
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"{len(spec.parts())} parts" in result.stdout


def test_arch_plot_lut_without_the_parts(tmp_path: Path) -> None:
    lut = tmp_path / "lut.json"
    save_table(fake_table(parse_arch(TINY), skip="head"), lut)
    result = run("arch", "plot", TINY, "--out", str(tmp_path / "x.png"), "--lut", str(lut))
    assert result.exit_code == 2
    assert "no entry for head" in result.stderr and "Traceback" not in result.output

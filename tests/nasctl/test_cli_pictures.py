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


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_sample_image

    path = tmp_path_factory.mktemp("img") / "flower.jpg"
    Image.fromarray(load_sample_image("flower.jpg")).save(path)
    return path


def test_visualize_training_checkpoint_without_arch(photo: Path, tmp_path: Path) -> None:
    from estimators import get_recipe, load_data, new_state, save_checkpoint

    state = new_state(parse_arch(TINY), load_data("digits", 32), get_recipe("search"))
    ckpt = save_checkpoint(state, tmp_path / "checkpoint.pt")
    out = tmp_path / "pictures"
    args = ["--checkpoint", str(ckpt), "--image", str(photo), "--out", str(out)]
    result = run("visualize", *args, "--layers", "stem,blocks.1", "--maps", "8")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["features_blocks.1.png", "features_stem.png", "filters.png", "input.png"]
    other = run("visualize", "r32_n10,stem_k3_s2_c16_re,ir_k3_s2_c16_re,head_d0", *args)
    assert other.exit_code == 2 and "was saved for a different architecture" in other.stderr


def test_visualize_classic_network(photo: Path, tmp_path: Path) -> None:
    import torch

    from search_space import build_classic, get_classic

    spec = get_classic("resnet18", 64, 10)
    torch.save(build_classic(spec).state_dict(), tmp_path / "r18.pt")
    out = tmp_path / "v"
    result = run("visualize", "resnet18", "-r", "64", "--num-classes", "10", "--checkpoint",
                 str(tmp_path / "r18.pt"), "--image", str(photo), "--out", str(out),
                 "--layers", "conv2_1", "--layers", "conv5_2.conv1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "features_conv5_2.conv1.png").is_file() and (out / "filters.png").is_file()

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasctl.cli import app
from search_space import REFERENCE_COUNTS, format_arch, get_baseline

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_table_default_lists_four_exact_baselines() -> None:
    result = run("table", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["name"]: (r["params"], r["macs"]) for r in rows} == REFERENCE_COUNTS
    assert all(r["ref"] == "exact" and r["width"] == 1.0 and r["resolution"] == 224 for r in rows)


def test_table_variants_and_csv() -> None:
    result = run("table", "mobilenet_v1", "-w", "1.0", "-w", "0.5", "-r", "224", "-r", "128",
                 "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("name,width,resolution,classes,params,macs")
    assert len(lines) == 1 + 4


def test_table_rich_output_and_layers() -> None:
    result = run("table", "mobilenet_v2", "--per-layer")
    assert result.exit_code == 0, result.output
    assert "blocks.16.conv_pwl" in result.stdout
    assert "depthwise" in result.stdout and "pointwise" in result.stdout
    assert "as standard" in result.stdout


def test_table_layers_json_rows() -> None:
    result = run("table", "mobilenet_v3_small", "--per-layer", "-f", "json")
    rows = json.loads(result.stdout)
    assert sum(r["macs"] for r in rows) == REFERENCE_COUNTS["mobilenet_v3_small"][1]


def test_table_accepts_arch_string_and_json_file(tmp_path: Path) -> None:
    spec = get_baseline("mobilenet_v3_small", 0.75, 96, 10)
    path = tmp_path / "arch.json"
    path.write_text(spec.to_json())
    result = run("table", format_arch(spec), str(path), "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["params"] == rows[1]["params"] and rows[0]["width"] is None


def test_arch_show_formats() -> None:
    table = run("arch", "show", "mobilenet_v3_large")
    assert table.exit_code == 0 and "5,483,032" in table.stdout
    spec = json.loads(run("arch", "show", "mobilenet_v2", "-f", "json").stdout)
    assert spec["format"] == "nasctl-arch/1" and len(spec["blocks"]) == 17
    line = run("arch", "show", "mobilenet_v2", "-r", "64", "-f", "arch").stdout.strip()
    assert line.startswith("r64_n1000,stem_k3_s2_c32_r6,")


def test_space_show() -> None:
    result = run("space", "show", "-f", "json")
    data = json.loads(result.stdout)
    assert data["size"] > 10**20 and len(data["stages"]) == 6
    assert "size:" in run("space", "show").stdout
    assert run("space", "show", "--dump").stdout.startswith("# nasctl search space")


def _space_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


BAD = [
    (["table", "mobilenet_v9"], "not a baseline"),
    (["table", "r224_n10,stem_c16,ir_k4_c16,head_d0"], "kernel must be odd"),
    (["table", "mobilenet_v2", "-w", "0"], "width"),
    (["table", "mobilenet_v2", "-w", "-1"], "width"),
    (["table", "mobilenet_v2", "-r", "100"], "resolution"),
    (["table", "mobilenet_v2", "-r", "16"], "total stride"),
    (["table", "mobilenet_v2", "-r", "-32"], "resolution"),
    (["table", "mobilenet_v2", "--num-classes", "0"], "num_classes"),
    (["arch", "show", "{bad json}.json"], "cannot read spec file"),
    (["arch", "show", "r224_n10,stem_c16"], "header, a stem"),
    (["space", "show", "--space", "missing.toml"], "cannot read space file"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"stem": {"out_channels": 16}, "blocks": [], "x": 1}', "unknown key 'x'"),
    ],
)
def test_bad_spec_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    result = run("arch", "show", str(path))
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[stem]\nchannels = 16\n[[stages]]\nchannels = 8\nstride = 1\ndepth = [1]\nkernel = []\n'
         'expansion = [1]\n', "must not be an empty list"),
        ("colour = 1\n[stem]\nchannels = 16\n", "unknown key 'colour'"),
    ],
)  # fmt: skip
def test_bad_space_files_exit_2(tmp_path: Path, text: str, message: str) -> None:
    result = run("space", "show", "--space", _space_file(tmp_path, text))
    assert result.exit_code == 2 and message in result.stderr

from __future__ import annotations

import itertools
import json

import pytest

from search_space import (
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    SpecError,
    StemSpec,
    baseline_names,
    format_arch,
    get_baseline,
    load_space,
    make_divisible,
    parse_arch,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (32 * 0.25, 8),  # never below the divisor
        (3, 8),
        (16 * 0.75, 16),  # 12 rounds half up to 16
        (20, 24),  # 20 -> 16 is more than 10% below -> 24
        (88, 88),
        (184, 184),
        (1280 * 0.5, 640),
        (72 / 4, 24),  # 18 -> 16 < 0.9 * 18 -> 24 (V3 SE width of 72 channels)
    ],
)
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected


def _small() -> ArchSpec:
    return ArchSpec(
        StemSpec(16),
        (BlockSpec(BlockKind.INVERTED_RESIDUAL, 16, 24, 3, 2, 64, 16, "hswish"),),
        HeadSpec(conv_channels=64, hidden_features=128, dropout=0.2),
        resolution=32,
        num_classes=10,
    )


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: StemSpec(0), "stem.out_channels"),
        (lambda: StemSpec(16, kernel=4), "stem.kernel"),
        (lambda: StemSpec(16, stride=3), "stem.stride"),
        (lambda: StemSpec(16, act="gelu"), "stem.act"),
        (lambda: BlockSpec("xx", 16, 16), "block.kind"),
        (lambda: BlockSpec("ir", 16, -1), "block.out_channels"),
        (lambda: BlockSpec("ir", 16, 16, se_channels=-8), "block.se_channels"),
        (lambda: BlockSpec("ds", 16, 16, mid_channels=32), "block.mid_channels"),
        (lambda: HeadSpec(dropout=1.0), "head.dropout"),
        (lambda: HeadSpec(conv_channels=-1), "head.conv_channels"),
        (lambda: _small().replace(resolution=36), "resolution"),
        (lambda: _small().replace(resolution=0), "resolution"),
        (lambda: _small().replace(num_classes=0), "num_classes"),
        (lambda: _small().replace(blocks=()), "blocks"),
        (
            lambda: _small().replace(blocks=(BlockSpec("ir", 8, 16),)),
            "blocks[0].in_channels",
        ),
    ],
)
def test_invalid_specs_name_the_field(make, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        make()


def _specs() -> list[ArchSpec]:
    specs = [get_baseline(n, w, r, c) for n in baseline_names() for w, r, c in
             [(1.0, 224, 1000), (0.75, 160, 10), (0.35, 32, 2)]]  # fmt: skip
    space = load_space()
    specs += [space.random_spec(seed, 10) for seed in range(200)]
    return [*specs, _small()]


SPECS = _specs()


def test_json_round_trip() -> None:
    for spec in SPECS:
        assert ArchSpec.from_json(spec.to_json()) == spec
        assert ArchSpec.from_dict(json.loads(spec.to_json(indent=None))) == spec


def test_arch_string_round_trip() -> None:
    for spec in SPECS:
        text = format_arch(spec)
        assert parse_arch(text) == spec, text
        assert " " not in text


def test_arch_string_of_v3_large_reads_like_the_paper() -> None:
    text = format_arch(get_baseline("mobilenet_v3_large"))
    assert text.startswith("r224_n1000,stem_k3_s2_c16_hs,ir_k3_s1_c16_re,ir_k3_s2_e4_c24_re,")
    assert ",ir_k5_s2_e3_c40_se0.25_re," in text
    assert ",ir_k3_s1_e2.3_c80_hs," in text
    assert text.endswith(",head_c960_hs_h1280_hs_d0.2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("r224_n10", "header, a stem"),
        ("x224_n10,stem_c16,ir_c16,head_d0", "element 0"),
        ("r224_n10,conv_c16,ir_c16,head_d0", "element 1"),
        ("r224_n10,stem_c16,xx_c16,head_d0", "block kind"),
        ("r224_n10,stem_c16,ir_k3,head_d0", "output channels"),
        ("r224_n10,stem_c16,ir_c16_q7,head_d0", "unknown token 'q7'"),
        ("r224_n10,stem_c16,ir_c16_k3_k5,head_d0", "given twice"),
        ("r224_n10,stem_c16,ir_c16_e4_m64,head_d0", "not both"),
        ("r224_n10,stem_c16,ir_c16_se2,head_d0", "SE ratio"),
        ("r224_n10,stem_c16,ir_c2.5,head_d0", "whole number"),
        ("r224_n10,stem_c16,ir_c16,head_c64", "followed by an activation"),
        ("r224_n10,stem_c16,ir_c16,head_d1.5", "head.dropout"),
        ("r36_n10,stem_c16,ir_c16,head_d0", "resolution"),
        ("r224_n10,stem_c16,ir_c16,ir_c24", "head"),
    ],
)
def test_parse_errors_are_spec_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_arch(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"format": "other/1"}, "format"),
        ({"stem": {"out_channels": 16}, "blocks": [], "extra": 1}, "unknown key 'extra'"),
        ({"blocks": []}, "spec.stem is required"),
        ({"stem": {"out_channels": 16}, "blocks": {}}, "list of block"),
        ({"stem": {"out_channels": 16, "colour": 1}, "blocks": []}, "stem has unknown key"),
        ({"stem": {}, "blocks": []}, "stem:"),
    ],
)
def test_from_dict_errors(data: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_dict(data)


def test_from_json_reports_bad_json() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{nope")


def test_parts_follow_the_strides() -> None:
    spec = get_baseline("mobilenet_v2", resolution=224)
    parts = spec.parts()
    assert [p.name for p in parts[:3]] == ["stem", "blocks.0", "blocks.1"]
    assert parts[0].in_size == 224 and parts[0].out_size == 112
    assert parts[-1].name == "head" and parts[-1].in_size == 7 and parts[-1].in_channels == 320
    for prev, cur in itertools.pairwise(parts):
        assert cur.in_size == prev.out_size


@pytest.mark.parametrize(
    "head",
    [
        "head_c0_hs_h1024_hs_d0.2",  # found by the fuzz test: the absent conv's activation
        "head_c0_nbn_re_d0",
        "head_c960_hs_h0_re_d0",
    ],
)
def test_absent_head_layers_keep_no_settings_so_the_string_round_trips(head: str) -> None:
    spec = parse_arch(f"r32_n10,stem_k3_s2_c16_hs,ir_k3_s1_c16_re,{head}")
    assert parse_arch(format_arch(spec)) == spec

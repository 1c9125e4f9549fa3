"""The timm bridge: block strings, the weight-name mapping, the written files, and (where
timm is installed) timm's own model giving the same logits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from bench.timm_bridge import EDGE_ARCHS  # every block type, SE, four acts, stride 64
from results import ExportError, export_model, random_weights
from results._timm import (
    TIMM_ARCH_NAME,
    TIMM_WEIGHTS_NAME,
    arch_def_shapes,
    timm_arch,
    timm_key_map,
    timm_state_dict,
)
from search_space import ArchSpec, baseline_names, build_model, get_baseline, load_space, parse_arch


def _specs() -> list[tuple[str, ArchSpec]]:
    space = load_space()
    return (
        [(n, get_baseline(n)) for n in baseline_names()]
        + [(f"space seed {s}", space.random_spec(s, 10)) for s in range(10)]
        + [(k, parse_arch(v)) for k, v in EDGE_ARCHS.items()]
    )


SPECS = _specs()
IDS = [name for name, _ in SPECS]

_BLOCK = re.compile(
    r"^(ir_r1_k\d+_s[12]_e[\d.]+|ds_r1_k\d+_s[12]|dsa_r1_k\d+_s[12]|cn_r1_k1_s1)"
    r"_c\d+(_se[\d.]+)?_n(re|r6|hs|sw)$"
)


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=IDS)
def test_every_weight_maps_once_to_the_shape_the_block_strings_imply(
    name: str, spec: ArchSpec
) -> None:
    arch = timm_arch(spec)
    strings = [b for stage in arch["arch_def"] for b in stage]
    assert all(_BLOCK.match(b) for b in strings), strings
    assert len(strings) == len(spec.blocks) + (1 if spec.head.conv_channels else 0)
    # timm's builder strides only a stage's first block
    assert all("_s2_" not in b for stage in arch["arch_def"] for b in stage[1:])
    state = build_model(spec).state_dict()
    mapping = timm_key_map(spec, list(state))
    assert set(mapping) == set(state)
    assert len(set(mapping.values())) == len(state)
    shapes = {k: tuple(v.shape) for k, v in timm_state_dict(spec, state).items()}
    assert shapes == arch_def_shapes(arch)


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("mobilenet_v1", "dsa_r1_k3_s1_c64_nre"),
        ("mobilenet_v2", "ds_r1_k3_s1_c16_nr6"),
        ("mobilenet_v3_large", "ds_r1_k3_s1_c16_nre"),
        ("mobilenet_v3_small", "ds_r1_k3_s2_c16_se0.5_nre"),
    ],
)
def test_baselines_read_like_timms_own_definitions(name: str, first: str) -> None:
    arch = timm_arch(get_baseline(name))
    assert arch["arch_def"][0][0] == first
    v3 = name.startswith("mobilenet_v3")
    assert arch["model_class"] == ("MobileNetV3" if v3 else "EfficientNet")
    if name == "mobilenet_v3_large":
        assert arch["arch_def"][1] == ["ir_r1_k3_s2_e4.0_c24_nre", "ir_r1_k3_s1_e3.0_c24_nre"]
        assert arch["arch_def"][-1] == ["cn_r1_k1_s1_c960_nhs"]
        assert arch["kwargs"]["num_features"] == 1280
        assert arch["kwargs"]["act_layer"] == "hard_swish"


@pytest.mark.parametrize(
    ("arch", "field"),
    [
        ("r32_n10,stem_k3_s1_c16_re,ir_k3_s2_e3_c24_re,head_d0", "stem.stride"),
        ("r32_n10,stem_k5_s2_c16_hs,ir_k3_s2_e3_c24_re,head_h64_hs_d0", "stem.kernel"),
        ("r32_n10,stem_k3_s2_c16_re,ir_k3_s2_e3_c24_re,head_c32_nbn_re_d0", "head.conv_bn"),
        ("r32_n10,stem_k3_s2_c16_re,ir_k3_s2_e3_c24_re,head_h64_hs_d0", "head.hidden_act"),
        ("r32_n10,stem_k3_s2_c16_re,ir_k3_s2_m36_c24_re,head_d0", "blocks[0].mid_channels"),
        (
            "r64_n10,stem_k3_s2_c8_re,ir_k3_s2_e2_c8_re,ir_k3_s2_e2_c8_re,ir_k3_s2_e2_c8_re,"
            "ir_k3_s2_e2_c8_re,ir_k3_s2_e2_c8_re,head_h16_re_d0",
            "total stride",
        ),
    ],
)
def test_what_timm_cannot_express_is_refused_by_name(arch: str, field: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=re.escape(field)) as info:
        export_model(parse_arch(arch), tmp_path, "timm")
    assert str(info.value).startswith("timm cannot express this spec: ")
    assert not (tmp_path / "timm_arch.json").exists()


def test_export_writes_the_three_files(tmp_path: Path) -> None:
    spec = get_baseline("mobilenet_v3_small").replace(num_classes=10)
    res = export_model(spec, tmp_path / "out", "timm")
    names = sorted(p.name for p in res.files)
    assert names == ["load_timm.py", "timm_arch.json", "timm_weights.pt"]
    arch = json.loads((tmp_path / "out" / "timm_arch.json").read_text())
    assert arch["input_size"] == [3, 224, 224] and arch["weights"].startswith("random")
    weights = torch.load(tmp_path / "out" / "timm_weights.pt", weights_only=True)
    assert {k: tuple(v.shape) for k, v in weights.items()} == arch_def_shapes(arch)
    ours = random_weights(spec, 0)
    assert torch.equal(weights["conv_head.weight"][:, :, 0, 0], ours["head.hidden.weight"])
    assert torch.equal(weights["blocks.0.0.se.conv_reduce.bias"], ours["blocks.0.se.fc1.bias"])
    loader = (tmp_path / "out" / "load_timm.py").read_text()
    compile(loader, "load_timm.py", "exec")
    assert f'"{TIMM_ARCH_NAME}"' in loader and f'"{TIMM_WEIGHTS_NAME}"' in loader
    with pytest.raises(ExportError, match="must be a folder"):
        export_model(spec, tmp_path / "x.json", "timm")


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=IDS)
def test_timm_builds_the_same_network(name: str, spec: ArchSpec, tmp_path: Path) -> None:
    pytest.importorskip("timm")
    spec = spec.replace(resolution=min(spec.resolution, 64))
    res = export_model(spec, tmp_path, "timm", tolerance=1e-5)
    assert res.checked_with == "timm (load_timm.py)"
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-5
    import runpy

    model = runpy.run_path(str(tmp_path / "load_timm.py"))["build"]()
    ours = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ours.parameters())

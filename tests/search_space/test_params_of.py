"""SearchSpace.params_of: the inverse of spec_from_params, and its refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from search_space import (
    ArchSpec,
    SearchSpace,
    SpaceError,
    builtin_space_text,
    get_baseline,
    load_space,
    parse_arch,
)

SPACES = {name: SearchSpace.from_text(builtin_space_text(name)) for name in ("default", "tiny")}

#: Two stride-1 stages of equal channels: the stage boundary is not written in a spec,
#: so params_of must try depths and backtrack.
TWIN = SearchSpace.from_text(
    """
        widths = [0.5, 1.0]
        resolutions = [32]
        [stem]
        channels = 16
        [[stages]]
        channels = 16
        stride = 1
        depth = [1, 2]
        kernel = [3]
        expansion = [1, 3]
        [[stages]]
        channels = 16
        stride = 1
        depth = [1, 2]
        kernel = [5]
        expansion = [3]
        [[stages]]
        channels = 24
        stride = 2
        depth = [1]
        kernel = [3]
        expansion = [3]
        """
)


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_params_of_inverts_spec_from_params(name: str) -> None:
    space = SPACES[name]
    for seed in range(100):
        spec = space.random_spec(seed, 10)
        params = space.params_of(spec)
        assert space.spec_from_params(params, 10) == spec
        assert params["resolution"] == spec.resolution


def test_params_of_backtracks_over_stage_boundaries() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        spec = TWIN.spec_from_params(TWIN.random_params(rng), 7)
        assert TWIN.spec_from_params(TWIN.params_of(spec), 7) == spec


def test_v3_large_is_found_at_width_one() -> None:
    params = load_space().params_of(get_baseline("mobilenet_v3_large", 1.0, 32, 10))
    assert params["width"] == 1.0 and params["s3.b1"] == "k3_e2.5_hswish"
    assert [params[f"s{i}.depth"] for i in range(6)] == [1, 2, 3, 4, 2, 3]


def _edit(spec: ArchSpec, index: int, **changes: object) -> ArchSpec:
    blocks = list(spec.blocks)
    blocks[index] = dataclasses.replace(blocks[index], **changes)
    return spec.replace(blocks=tuple(blocks))


SPEC = SPACES["default"].random_spec(1, 10)  # blocks[3]: stage 1, block 2, 24 channels


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SPEC.replace(resolution=64), "resolution must be one of 32, 40, 48"),
        (get_baseline("mobilenet_v2", 1.0, 32, 10), "stem.act must be 'hswish'"),
        (get_baseline("mobilenet_v3_small", 1.0, 32, 10), "blocks[0].stride must be 1"),
        (get_baseline("mobilenet_v3_large", 0.35, 32, 10), "blocks[1].out_channels must be 16"),
        (
            parse_arch("r32_n10,stem_k3_s2_c24_hs,ir_k3_s1_c24_re,head_d0.2"),
            "stem.out_channels must be one of 8, 16",
        ),
        (_edit(SPEC, 3, kernel=7), "blocks[3].kernel must be one of 3, 5 (stage 1, block 2)"),
        (_edit(SPEC, 3, act="relu6"), "blocks[3].act must be one of 'relu', 'hswish'"),
        (_edit(SPEC, 3, mid_channels=104), "blocks[3].mid_channels must be one of 72, 96, 144"),
        (_edit(SPEC, 3, se_channels=32), "blocks[3].se_channels must be one of 0, 24"),
        (SPEC.replace(blocks=SPEC.blocks[:1]), "blocks ends after 1 blocks, before stage 1"),
        (
            SPEC.replace(blocks=SPEC.blocks[:-1], head=dataclasses.replace(SPEC.head, dropout=0.5)),
            "head.dropout must be 0.2",
        ),
        (
            SPEC.replace(head=dataclasses.replace(SPEC.head, conv_channels=64)),
            "head.conv_channels must be",
        ),
    ],
)
def test_a_spec_outside_the_space_is_refused_naming_the_field(spec: ArchSpec, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        SPACES["default"].params_of(spec)
    assert message in str(info.value)


def test_too_few_blocks_in_a_stage_names_the_stage() -> None:
    space = SPACES["default"]
    params = {**space.random_params(np.random.default_rng(3)), "s1.depth": 1, "s2.depth": 2}
    spec = space.spec_from_params(params, 10)
    short = spec.replace(blocks=spec.blocks[:3] + spec.blocks[4:])  # stage 2 keeps 1 block
    with pytest.raises(
        SpaceError, match=r"blocks\[3\].out_channels must be 40 \(stage 2, block 1\)"
    ):
        space.params_of(short)

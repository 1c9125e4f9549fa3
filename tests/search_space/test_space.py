from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest

from search_space import (
    SpaceError,
    default_space_text,
    get_baseline,
    load_space,
)

TINY = """
name = "tiny"
widths = [0.5, 1.0]
resolutions = [32]
[stem]
channels = 16
[head]
conv_channels = 64
[[stages]]
channels = 16
stride = 2
depth = [1, 2]
kernel = [3, 5]
expansion = [1, 3]
se = [false]
act = ["relu"]
[[stages]]
channels = 24
stride = 2
depth = [1]
kernel = [3]
expansion = [4]
se = [false, true]
act = ["relu", "hswish"]
"""


EXTRA_STAGE = """
[[stages]]
channels = 32
stride = 2
depth = [1]
kernel = [3]
expansion = [4]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_size_matches_enumeration(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, TINY))
    # stage 0: 4 choices per block, depth 1 or 2 -> 4 + 16; stage 1: 4; widths 2.
    assert space.size == 2 * 1 * (4 + 16) * 4
    specs = set()
    s0, s1 = space.stages[0].block_choices, space.stages[1].block_choices
    for width in space.widths:
        for depth in (1, 2):
            for blocks0 in itertools.product(s0, repeat=depth):
                for b1 in s1:
                    specs.add(space.make_spec(width, 32, [list(blocks0), [b1]], 10))
    assert len(specs) == space.size


def test_default_space_loads_and_is_large() -> None:
    space = load_space()
    assert space.name == "mobilenetv3"
    assert space.size > 10**20
    assert load_space(None) == space


def test_same_params_same_spec() -> None:
    space = load_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        trial = study.ask()
        spec = space.sample(trial, 10)
        assert space.spec_from_params(trial.params, 10) == spec
        fixed = optuna.trial.FixedTrial(trial.params)
        assert space.sample(fixed, 10) == spec


def test_every_trial_suggests_the_same_parameter_names() -> None:
    space = load_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names = set()
    for _ in range(10):
        trial = study.ask()
        space.sample(trial, 10)
        names.add(frozenset(trial.params))
    assert len(names) == 1


def test_random_spec_is_seeded() -> None:
    space = load_space()
    assert space.random_spec(7, 10) == space.random_spec(7, 10)
    assert len({space.random_spec(s, 10) for s in range(50)}) == 50


def _v3_large_params() -> dict[str, object]:
    re, hs = "relu", "hswish"
    stages = [
        [(3, 1, False, re)],
        [(3, 4, False, re), (3, 3, False, re)],
        [(5, 3, True, re)] * 3,
        [(3, 6, False, hs), (3, 2.5, False, hs), (3, 2.3, False, hs), (3, 2.3, False, hs)],
        [(3, 6, True, hs)] * 2,
        [(5, 6, True, hs)] * 3,
    ]
    params: dict[str, object] = {"width": 1.0, "resolution": 32}
    for i, blocks in enumerate(stages):
        params[f"s{i}.depth"] = len(blocks)
        for j, (k, e, se, act) in enumerate(blocks):
            params[f"s{i}.b{j}"] = f"k{k}_e{e:g}{'_se' if se else ''}_{act}"
    return params


def test_v3_large_is_a_point_of_the_default_space() -> None:
    spec = load_space().spec_from_params(_v3_large_params(), 10)
    assert spec == get_baseline("mobilenet_v3_large", 1.0, 32, 10)


def test_v3_small_cost_is_reachable() -> None:
    from estimators import count

    space = load_space()
    small = count(get_baseline("mobilenet_v3_small", 1.0, 32, 10)).macs
    macs = [count(space.random_spec(s, 10)).macs for s in range(300)]
    assert min(macs) < small < max(macs)


def test_distinct_parts_cover_every_sample() -> None:
    space = load_space()
    table = {(p.in_size, p.in_channels, p.spec) for p in space.distinct_parts(10)}
    rng = np.random.default_rng(0)
    for _ in range(100):
        spec = space.spec_from_params(space.random_params(rng), 10)
        for part in spec.parts():
            assert (part.in_size, part.in_channels, part.spec) in table, part


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name = "tiny"', 'name = "tiny"\ncolour = 1'), "unknown key 'colour'"),
        (
            lambda t: t.replace("kernel = [3, 5]", "kernel = []"),
            r"stages\[0\].kernel must not be an empty",
        ),
        (lambda t: t.replace("kernel = [3, 5]", "kernel = [4]"), "odd integer"),
        (lambda t: t.replace("widths = [0.5, 1.0]", "widths = [0]"), "widths"),
        (lambda t: t.replace("widths = [0.5, 1.0]", "widths = [-1.0]"), "widths"),
        (lambda t: t.replace("resolutions = [32]", "resolutions = [36]"), "multiple of 8"),
        (
            lambda t: t.replace("resolutions = [32]", "resolutions = [8]") + EXTRA_STAGE,
            r"total stride \(16\)",
        ),
        (lambda t: t.replace("depth = [1, 2]", "depth = [0]"), "depth"),
        (lambda t: t.replace("stride = 2", "stride = 3", 1), "1 or 2"),
        (lambda t: t.replace('act = ["relu"]', 'act = ["gelu"]'), "act"),
        (lambda t: t.replace("se = [false]", "se = [0]"), "true or false"),
        (lambda t: t.replace("expansion = [1, 3]", "expansion = [1, 1]"), "repeated"),
        (lambda t: t.replace("[stem]\nchannels = 16", "[stem]"), "stem.channels is required"),
        (lambda t: t.replace("channels = 24", 'channels = "24"'), "positive integer"),
        (lambda t: t + "\n[[[", "not valid TOML"),
    ],
)
def test_bad_space_files(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        load_space(_write(tmp_path, edit(TINY)))


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="cannot read space file"):
        load_space(tmp_path / "nope.toml")


def test_default_text_is_the_default(tmp_path: Path) -> None:
    assert load_space(_write(tmp_path, default_space_text())) == load_space()


def test_bad_parameters_are_named() -> None:
    space = load_space()
    params = space.random_params(np.random.default_rng(0))
    with pytest.raises(SpaceError, match=r"s1.b0 must be one of"):
        space.spec_from_params({**params, "s1.b0": "k7_e9_relu"}, 10)
    with pytest.raises(SpaceError, match="parameter 'width' is missing"):
        space.spec_from_params({k: v for k, v in params.items() if k != "width"}, 10)


def test_builtin_tiny_space(tmp_path: Path) -> None:
    from search_space import builtin_space_text

    assert load_space(_write(tmp_path, builtin_space_text("tiny"))).size == 144
    with pytest.raises(SpaceError, match="no built-in space named 'huge'"):
        builtin_space_text("huge")

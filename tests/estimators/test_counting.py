from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from estimators import count, fvcore_macs, standard_conv_macs
from estimators._counting import conv_macs, conv_params
from search_space import baseline_names, build_model, get_baseline, load_space

pytestmark = pytest.mark.usefixtures("one_thread")


def test_conv_closed_forms() -> None:
    # A 3x3 standard conv 32 -> 64 on a 112x112 output; its depthwise-separable version.
    assert conv_macs(32, 64, 3, 1, 112) == 112 * 112 * 64 * 32 * 9
    assert conv_macs(32, 32, 3, 32, 112) == 112 * 112 * 32 * 9
    assert conv_params(32, 64, 3, 1, bn=True) == 64 * 32 * 9 + 2 * 64
    assert conv_params(32, 64, 1, 1, bn=False) == 64 * 32 + 64


def _per_layer_module_params(model) -> dict[str, int]:
    return {name: p.numel() for name, p in model.named_parameters()}


def _check(spec) -> None:
    report = count(spec)
    model = build_model(spec)
    assert report.params == sum(p.numel() for p in model.parameters())
    # Per layer: every parameter belongs to exactly one counted layer with the same total.
    grouped: dict[str, int] = defaultdict(int)
    names = [layer.name for layer in report.layers]
    for pname, n in _per_layer_module_params(model).items():
        owners = [ln for ln in names if pname.startswith(ln + ".")]
        assert len(owners) == 1, pname
        grouped[owners[0]] += n
    assert grouped == {layer.name: layer.params for layer in report.layers}
    assert report.macs == fvcore_macs(model, spec.resolution)


@pytest.mark.parametrize("name", baseline_names())
@pytest.mark.parametrize(("width", "res"), [(1.0, 224), (0.75, 160), (0.5, 32)])
def test_baselines_agree_with_fvcore_and_module(name: str, width: float, res: int) -> None:
    _check(get_baseline(name, width, res, 1000 if res == 224 else 10))


def _random_specs(n: int, seed: int) -> list:
    space = load_space()
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        params = space.random_params(rng)
        params["resolution"] = int(rng.choice([32, 48, 64, 96]))
        specs.append(space.spec_from_params(params, 10))
    return specs


@pytest.mark.parametrize("seed", range(5))
def test_random_samples_agree_with_fvcore_and_module(seed: int) -> None:
    # Tracing is slow (seconds a spec): a few specs here, the 200 below in closed form.
    (spec,) = _random_specs(1, 100 + seed)
    _check(spec)


def _closed_form(spec) -> tuple[int, int]:
    """(params, MACs) straight from the spec: a bottleneck on an h x w input with t-fold
    expansion costs h w d' t d' + h' w' (t d' k^2 + t d' d'') MACs (Sandler et al. 2018,
    sec. 3.3, with the stride applied after the expansion), BatchNorm 2 a channel, SE
    two 1x1 convs with bias on the pooled vector."""
    size = (spec.resolution - 1) // spec.stem.stride + 1  # 'same' padding, odd kernel
    c, k = spec.stem.out_channels, spec.stem.kernel
    params, macs = 3 * c * k * k + 2 * c, size * size * 3 * c * k * k
    for b in spec.blocks:
        d, m, o, k = b.in_channels, b.mid_channels, b.out_channels, b.kernel
        out = (size - 1) // b.stride + 1
        if m != d:  # expansion conv (an inverted residual with t != 1)
            params, macs = params + d * m + 2 * m, macs + size * size * d * m
        params, macs = params + m * k * k + 2 * m, macs + out * out * m * k * k
        if b.se_channels:
            params += 2 * m * b.se_channels + b.se_channels + m
            macs += 2 * m * b.se_channels
        params, macs = params + m * o + 2 * o, macs + out * out * m * o
        size, c = out, o
    h = spec.head
    if h.conv_channels:
        params += c * h.conv_channels + (2 if h.conv_bn else 1) * h.conv_channels
        macs += size * size * c * h.conv_channels
        c = h.conv_channels
    for features in (h.hidden_features, spec.num_classes):
        if features:
            params, macs = params + c * features + features, macs + c * features
            c = features
    return params, macs


@pytest.mark.parametrize("seed", range(4))
def test_200_random_samples_agree_with_the_closed_form(seed: int) -> None:
    for spec in _random_specs(50, seed):
        report = count(spec)
        assert (report.params, report.macs) == _closed_form(spec)


@pytest.mark.parametrize("name", baseline_names())
def test_closed_form_of_the_baselines(name: str) -> None:
    spec = get_baseline(name)
    assert _closed_form(spec) == (count(spec).params, count(spec).macs)


def test_by_op_matches_v1_paper_table_2() -> None:
    # Howard et al. 2017, Table 2: 1x1 conv 94.86% of Mult-Adds, 74.59% of params.
    report = count(get_baseline("mobilenet_v1"))
    params, macs = report.by_op()["pointwise"]
    assert round(100 * macs / report.macs, 2) == 94.86
    # The paper's params share leaves BatchNorm out; ours counts it (74.47%).
    assert abs(100 * params / report.params - 74.59) < 0.2


def test_standard_conv_comparison_of_v1() -> None:
    # Table 4: a standard-conv MobileNet costs 4866M Mult-Adds, the separable one 569M.
    report = count(get_baseline("mobilenet_v1"))
    separable, standard = standard_conv_macs(report)
    rest = report.macs - separable
    assert abs((standard + rest) - 4866e6) / 4866e6 < 0.001

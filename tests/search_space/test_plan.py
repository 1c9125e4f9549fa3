"""The layer plan names the built modules and describes them: for every baseline, every
classic network and 50 random specs of the default space, each plan layer's module exists
under the plan's name with the plan's channels, kernel, stride, groups, bias and
BatchNorm, gives the plan's output shape in a forward pass, and the layers with weights
own every parameter of the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_space import (
    INPUT,
    Layer,
    LayerOp,
    baseline_names,
    build_classic,
    build_model,
    classic_names,
    format_arch,
    get_baseline,
    get_classic,
    load_space,
    parse_arch,
    plan,
)

pytestmark = pytest.mark.usefixtures("one_thread")


_POOLS = {
    LayerOp.MAXPOOL: nn.MaxPool2d,
    LayerOp.AVGPOOL: nn.AvgPool2d,
    LayerOp.GLOBAL_POOL: nn.AdaptiveAvgPool2d,
    LayerOp.LRN: nn.LocalResponseNorm,
}


def _random_specs(n: int, seed: int) -> list:
    space = load_space()
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        params = space.random_params(rng)
        params["resolution"] = int(rng.choice([32, 48, 64]))
        specs.append(space.spec_from_params(params, 10))
    return specs


def _weights(module: nn.Module) -> nn.Conv2d | nn.Linear:
    """The conv or linear module a plan layer names: itself, or the ``conv`` of a
    ``ConvBnAct`` / the ``linear`` of a classic fully connected row."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        return module
    inner = getattr(module, "conv", None) or getattr(module, "linear", None)
    assert isinstance(inner, nn.Conv2d | nn.Linear), type(module).__name__
    return inner


def _check_module(layer: Layer, module: nn.Module) -> None:
    if layer.op in _POOLS:
        assert isinstance(module, _POOLS[layer.op]), layer.name
        return
    w = _weights(module)
    assert (w.bias is not None) == layer.bias, layer.name
    if isinstance(w, nn.Linear):
        assert layer.op is LayerOp.LINEAR, layer.name
        assert (w.in_features, w.out_features) == (layer.in_channels, layer.out_channels)
        return
    got = (w.in_channels, w.out_channels, w.kernel_size, w.stride, w.padding, w.groups)
    want = (
        layer.in_channels,
        layer.out_channels,
        (layer.kernel, layer.kernel),
        (layer.stride, layer.stride),
        (layer.padding, layer.padding),
        layer.groups,
    )
    assert got == want, layer.name
    assert isinstance(getattr(module, "bn", None), nn.BatchNorm2d) == layer.bn, layer.name


def _check(spec, model: nn.Module, input_shape: tuple[int, ...]) -> None:
    layers = plan(spec)
    names = [layer.name for layer in layers]
    assert len(set(names)) == len(names)
    modules = dict(model.named_modules())
    # Every tensor read is written before (or is the input); the last layer is the logits.
    seen = {INPUT}
    for layer in layers:
        assert set(layer.reads) <= seen, layer.name
        seen.add(layer.name)
    assert layers[-1].op is LayerOp.LINEAR and layers[-1].out_channels == spec.num_classes
    # Each layer with a module: there under the plan's name, shaped as the plan says.
    with_module = [layer for layer in layers if layer.has_weights or layer.op in _POOLS]
    for layer in with_module:
        assert layer.name in modules, layer.name
        _check_module(layer, modules[layer.name])
    # The weighted layers own every parameter, each exactly once.
    owners = [layer.name for layer in layers if layer.has_weights]
    for pname, _ in model.named_parameters():
        assert sum(pname.startswith(o + ".") for o in owners) == 1, pname
    # A forward pass gives every module the output map the plan says.
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        modules[layer.name].register_forward_hook(
            lambda _m, _i, out, name=layer.name: shapes.__setitem__(name, tuple(out.shape))
        )
        for layer in with_module
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(input_shape))
    for hook in hooks:
        hook.remove()
    for layer in with_module:
        if layer.op is LayerOp.LINEAR:
            assert shapes[layer.name] == (1, layer.out_channels), layer.name
        else:
            want = (1, layer.out_channels, layer.out_size, layer.out_size)
            assert shapes[layer.name] == want, layer.name


@pytest.mark.parametrize("name", baseline_names())
@pytest.mark.parametrize(("width", "res", "classes"), [(1.0, 224, 1000), (0.5, 32, 10)])
def test_plan_names_and_shapes_the_built_baselines(
    name: str, width: float, res: int, classes: int
) -> None:
    spec = get_baseline(name, width, res, classes)
    _check(spec, build_model(spec), (1, 3, res, res))


@pytest.mark.parametrize("name", classic_names())
def test_plan_names_and_shapes_the_built_classic_networks(name: str) -> None:
    # Small inputs keep the forward cheap; the fully connected rows shrink with them.
    res = {"lenet5": 32, "alexnet": 67, "zfnet": 64, "vgg16": 32}.get(name, 64)
    spec = get_classic(name, res, 10)
    _check(spec, build_classic(spec), spec.input_shape)


@pytest.mark.parametrize("seed", range(5))
def test_plan_names_and_shapes_random_specs(seed: int) -> None:
    for spec in _random_specs(10, seed):
        _check(spec, build_model(spec), (1, 3, spec.resolution, spec.resolution))


#: Every activation and a 7x7 kernel in each block kind, with SE and a residual.
OPTIONS = (
    "r32_n10,stem_k3_s2_c16_sw,ir_k7_s1_e4_c16_se0.25_sw,ds_k7_s2_c24_r6,"
    "ir_k7_s1_c24_se0.25_hs,ir_k3_s1_e3_c24_re,head_c64_sw_h128_sw_d0.2"
)


def test_every_block_option_round_trips_and_builds_as_planned() -> None:
    spec = parse_arch(OPTIONS)
    assert parse_arch(format_arch(spec)) == spec
    assert {layer.act for layer in plan(spec)} >= {"swish", "relu6", "hswish", "relu"}
    _check(spec, build_model(spec), (1, 3, 32, 32))


def test_residuals_and_se_are_read_from_the_plan() -> None:
    # MobileNetV3-Large block 1: 16 -> 16, 3x3, stride 1, no expansion -> a residual add
    # reading the projection and the stem's output; block 3 (stride 2) has none.
    layers = {layer.name: layer for layer in plan(get_baseline("mobilenet_v3_large"))}
    assert layers["blocks.0.add"].reads == ("blocks.0.conv_pwl", "stem")
    assert "blocks.1.add" not in layers
    se = [layer for layer in layers.values() if layer.op is LayerOp.SCALE]
    assert se and all(layer.reads[0].endswith(".conv_dw") for layer in se)
    # ResNet-50: the first block projects its shortcut; the add reads conv3 and it.
    res = {layer.name: layer for layer in plan(get_classic("resnet50"))}
    assert res["conv2_1.add"].reads == ("conv2_1.conv3", "conv2_1.shortcut")
    assert res["conv2_2.add"].reads == ("conv2_2.conv3", "conv2_1.add")

"""Analytic parameter and MAC counts over an ``ArchSpec``: no module, no tracing.

Convention: one fused multiply-add = 1 MAC; only convolution and linear layers have MACs
(the MobileNet papers' "MAdds", fvcore's ``conv`` + ``linear`` operators). BatchNorm,
activations, pooling, residual adds and the SE multiply cost no MACs here. Parameters are
every trainable tensor, BatchNorm's weight and bias included (running stats are buffers).

The classic reference networks (``ClassicSpec``) are counted by the same layer formulas,
walking their rows instead of stem, blocks and head.
"""

from __future__ import annotations

from dataclasses import dataclass

from search_space import ArchSpec, BlockKind, BlockSpec, HeadSpec, Part, StemSpec
from search_space._classic_spec import (
    ClassicSpec,
    Conv,
    Inception,
    LayerShape,
    Linear,
    Residual,
)

__all__ = [
    "CostReport",
    "LayerCost",
    "classic_layers",
    "conv_macs",
    "conv_params",
    "count",
    "part_layers",
    "standard_conv_macs",
]


def conv_macs(c_in: int, c_out: int, kernel: int, groups: int, out_size: int) -> int:
    """MACs of a kxk convolution on a square output map: H*W * C_out * (C_in/g) * k*k."""
    return out_size * out_size * c_out * (c_in // groups) * kernel * kernel


def conv_params(c_in: int, c_out: int, kernel: int, groups: int, bn: bool) -> int:
    """Conv weights, plus BatchNorm's scale and shift (bn) or a conv bias (no bn)."""
    return c_out * (c_in // groups) * kernel * kernel + (2 * c_out if bn else c_out)


@dataclass(frozen=True)
class LayerCost:
    """One conv or linear layer. ``op`` is conv | depthwise | pointwise | linear, the
    split of MobileNetV1's Table 2 (pointwise = 1x1 conv, SE convs included; a grouped
    conv that is not depthwise, like AlexNet's, is a conv)."""

    name: str
    op: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    in_size: int
    out_size: int
    params: int
    macs: int


@dataclass(frozen=True)
class CostReport:
    layers: tuple[LayerCost, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def by_op(self) -> dict[str, tuple[int, int]]:
        """(params, macs) per op kind, in the order conv, depthwise, pointwise, linear."""
        out: dict[str, tuple[int, int]] = {}
        for op in ("conv", "depthwise", "pointwise", "linear"):
            rows = [layer for layer in self.layers if layer.op == op]
            if rows:
                out[op] = (sum(r.params for r in rows), sum(r.macs for r in rows))
        return out


def _conv(
    name: str,
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int,
    in_size: int,
    groups: int = 1,
    bn: bool = True,
    out_size: int | None = None,
) -> LayerCost:
    if out_size is None:
        out_size = (in_size + 2 * (kernel // 2) - kernel) // stride + 1
    if groups > 1 and groups == c_in:
        op = "depthwise"
    elif kernel == 1:
        op = "pointwise"
    else:
        op = "conv"
    return LayerCost(
        name,
        op,
        c_in,
        c_out,
        kernel,
        stride,
        in_size,
        out_size,
        conv_params(c_in, c_out, kernel, groups, bn),
        conv_macs(c_in, c_out, kernel, groups, out_size),
    )


def _linear(name: str, f_in: int, f_out: int) -> LayerCost:
    return LayerCost(name, "linear", f_in, f_out, 1, 1, 1, 1, f_in * f_out + f_out, f_in * f_out)


def _se(name: str, channels: int, squeeze: int) -> list[LayerCost]:
    # 1x1 convs with bias on the pooled 1x1 map.
    return [
        _conv(f"{name}.fc1", channels, squeeze, 1, 1, 1, bn=False),
        _conv(f"{name}.fc2", squeeze, channels, 1, 1, 1, bn=False),
    ]


def part_layers(part: Part, num_classes: int) -> list[LayerCost]:
    """The layers of one stem, block or head, named like the built module's parameters."""
    spec, hw, name = part.spec, part.in_size, part.name
    if isinstance(spec, StemSpec):
        return [_conv(name, 3, spec.out_channels, spec.kernel, spec.stride, hw)]
    if isinstance(spec, BlockSpec):
        return _block_layers(name, spec, hw)
    assert isinstance(spec, HeadSpec)  # Part.spec is one of three types
    layers = []
    channels = part.in_channels
    if spec.conv_channels:
        layers.append(
            _conv(f"{name}.conv", channels, spec.conv_channels, 1, 1, hw, bn=spec.conv_bn)
        )
        channels = spec.conv_channels
    if spec.hidden_features:
        layers.append(_linear(f"{name}.hidden", channels, spec.hidden_features))
        channels = spec.hidden_features
    layers.append(_linear(f"{name}.classifier", channels, num_classes))
    return layers


def _block_layers(name: str, b: BlockSpec, hw: int) -> list[LayerCost]:
    mid = b.mid_channels
    if b.kind is BlockKind.DEPTHWISE_SEPARABLE:
        dw = _conv(f"{name}.conv_dw", mid, mid, b.kernel, b.stride, hw, groups=mid)
        layers = [dw]
        if b.has_se:
            layers += _se(f"{name}.se", mid, b.se_channels)
        layers.append(_conv(f"{name}.conv_pw", mid, b.out_channels, 1, 1, dw.out_size))
        return layers
    layers = []
    if b.has_expand_conv:
        layers.append(_conv(f"{name}.conv_pw", b.in_channels, mid, 1, 1, hw))
    dw = _conv(f"{name}.conv_dw", mid, mid, b.kernel, b.stride, hw, groups=mid)
    layers.append(dw)
    if b.has_se:
        layers += _se(f"{name}.se", mid, b.se_channels)
    layers.append(_conv(f"{name}.conv_pwl", mid, b.out_channels, 1, 1, dw.out_size))
    return layers


def classic_layers(shape: LayerShape) -> list[LayerCost]:
    """The conv and linear layers of one classic row, named like the built module's
    children (``conv2_1.conv1``, ``inception3a.b3``); pooling and LRN rows have none."""
    row, c, hw, out = shape.layer, shape.in_channels, shape.in_size, shape.out_size
    name = row.name
    if isinstance(row, Conv):
        return [_conv(name, c, row.out, row.kernel, row.stride, hw, row.groups, row.bn, out)]
    if isinstance(row, Linear):
        return [_linear(name, c * hw * hw, row.out)]
    if isinstance(row, Inception):
        return [
            _conv(f"{name}.b1", c, row.c1, 1, 1, hw, bn=False),
            _conv(f"{name}.b2_reduce", c, row.c3_reduce, 1, 1, hw, bn=False),
            _conv(f"{name}.b2", row.c3_reduce, row.c3, 3, 1, hw, bn=False),
            _conv(f"{name}.b3_reduce", c, row.c5_reduce, 1, 1, hw, bn=False),
            _conv(f"{name}.b3", row.c5_reduce, row.c5, 5, 1, hw, bn=False),
            _conv(f"{name}.b4", c, row.pool_proj, 1, 1, hw, bn=False),
        ]
    if isinstance(row, Residual):
        w, s = row.width, row.stride
        if row.kind == "basic":
            layers = [
                _conv(f"{name}.conv1", c, w, 3, s, hw, out_size=out),
                _conv(f"{name}.conv2", w, row.out, 3, 1, out),
            ]
        else:
            layers = [
                _conv(f"{name}.conv1", c, w, 1, s, hw, out_size=out),
                _conv(f"{name}.conv2", w, w, 3, 1, out),
                _conv(f"{name}.conv3", w, row.out, 1, 1, out),
            ]
        if s != 1 or c != row.out:
            layers.append(_conv(f"{name}.shortcut", c, row.out, 1, s, hw, out_size=out))
        return layers
    return []


def count(spec: ArchSpec | ClassicSpec) -> CostReport:
    """Params and MACs of every conv and linear layer of ``spec``."""
    layers: list[LayerCost] = []
    if isinstance(spec, ClassicSpec):
        for shape in spec.shapes():
            layers += classic_layers(shape)
        return CostReport(tuple(layers))
    for part in spec.parts():
        layers += part_layers(part, spec.num_classes)
    return CostReport(tuple(layers))


def standard_conv_macs(report: CostReport) -> tuple[int, int]:
    """(MACs of the depthwise + pointwise pairs, MACs had each pair been one standard kxk
    convolution): the comparison of MobileNetV1 (Howard et al. 2017, eq. 5 vs eq. 4)."""
    separable = standard = 0
    depthwise: LayerCost | None = None
    for layer in report.layers:
        if layer.op == "depthwise":
            depthwise = layer
        elif depthwise is not None and layer.name.endswith((".conv_pw", ".conv_pwl")):
            # The projection right after a depthwise conv belongs to the same block.
            separable += depthwise.macs + layer.macs
            standard += conv_macs(
                depthwise.in_channels, layer.out_channels, depthwise.kernel, 1, depthwise.out_size
            )
            depthwise = None
    return separable, standard

"""Analytic parameter and MAC counts over an ``ArchSpec``: no module, no tracing.

Convention: one fused multiply-add = 1 MAC; only convolution and linear layers have MACs
(the MobileNet papers' "MAdds", fvcore's ``conv`` + ``linear`` operators). BatchNorm,
activations, pooling, residual adds and the SE multiply cost no MACs here. Parameters are
every trainable tensor, BatchNorm's weight and bias included (running stats are buffers).

Both MobileNets and the classic reference networks (``ClassicSpec``) are counted from
their layer plan (``search_space.plan``): one formula a layer op, no walk of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from search_space import ArchSpec, ClassicSpec, Layer, LayerOp, Part, plan, plan_part

__all__ = [
    "CostReport",
    "LayerCost",
    "conv_macs",
    "conv_params",
    "count",
    "layer_cost",
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
    conv that is not depthwise, like AlexNet's, is a conv). ``layer`` is its plan row."""

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
    layer: Layer


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


def layer_cost(layer: Layer) -> LayerCost:
    """Params and MACs of one plan row with weights (a convolution or a linear layer)."""
    c_in, c_out, k, g = layer.in_channels, layer.out_channels, layer.kernel, layer.groups
    if layer.op is LayerOp.LINEAR:
        op, params, macs = "linear", c_in * c_out + c_out, c_in * c_out
    else:
        if g > 1 and g == c_in:
            op = "depthwise"
        elif k == 1:
            op = "pointwise"
        else:
            op = "conv"
        params = conv_params(c_in, c_out, k, g, layer.bn)  # plan convs: bias = not bn
        macs = conv_macs(c_in, c_out, k, g, layer.out_size)
    return LayerCost(
        layer.name, op, c_in, c_out, k, layer.stride, layer.in_size, layer.out_size, params,
        macs, layer,
    )  # fmt: skip


def _costs(layers: tuple[Layer, ...]) -> list[LayerCost]:
    return [layer_cost(layer) for layer in layers if layer.has_weights]


def part_layers(part: Part, num_classes: int) -> list[LayerCost]:
    """The conv and linear layers of one stem, block or head (named like its modules)."""
    return _costs(plan_part(part, num_classes))


def count(spec: ArchSpec | ClassicSpec) -> CostReport:
    """Params and MACs of every conv and linear layer of ``spec``'s plan."""
    return CostReport(tuple(_costs(plan(spec))))


def standard_conv_macs(report: CostReport) -> tuple[int, int]:
    """(MACs of the depthwise + pointwise pairs, MACs had each pair been one standard kxk
    convolution): the comparison of MobileNetV1 (Howard et al. 2017, eq. 5 vs eq. 4)."""
    separable = standard = 0
    depthwise: LayerCost | None = None
    for cost in report.layers:
        if cost.layer.op is LayerOp.DWCONV:
            depthwise = cost
        elif (
            depthwise is not None
            and cost.layer.op is LayerOp.CONV
            and cost.layer.part == depthwise.layer.part
        ):
            # The first plain conv after a depthwise conv in its block: the projection.
            separable += depthwise.macs + cost.macs
            standard += conv_macs(
                depthwise.in_channels, cost.out_channels, depthwise.kernel, 1, depthwise.out_size
            )
            depthwise = None
    return separable, standard

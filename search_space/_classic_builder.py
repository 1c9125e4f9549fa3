"""ClassicSpec -> torch.nn.Module: one named child per row, a straight forward.

Module names are the rows' names, and inside a row the names the counter gives its layers
(``conv2_1.conv1``, ``inception3a.b3_reduce``, ``fc6``), so per-layer counts can be checked
against the module. Convolutions are ``ConvBnAct`` so that the latency protocol folds their
BatchNorm like a MobileNet's.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from search_space._blocks import ConvBnAct
from search_space._builder import _init_weights, cpu_seeded
from search_space._classic_spec import (
    LRN,
    ClassicAct,
    ClassicSpec,
    Conv,
    GlobalPool,
    Inception,
    Linear,
    Pool,
    Residual,
)

__all__ = ["ClassicNet", "build_classic"]


def _act(act: ClassicAct | None) -> nn.Module:
    if act is ClassicAct.RELU:
        return nn.ReLU(inplace=True)
    if act is ClassicAct.TANH:
        return nn.Tanh()
    return nn.Identity()


class ClassicConv(ConvBnAct):
    """A ``Conv`` row: conv with its own padding and groups, BatchNorm or bias, activation."""

    def __init__(self, in_channels: int, row: Conv) -> None:
        super().__init__(
            in_channels, row.out, row.kernel, row.stride, row.groups, None, row.bn, row.pad
        )
        self.act = _act(row.act)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, bn: bool = False) -> ClassicConv:
    act = None if bn else ClassicAct.RELU  # residual convs: the block applies its ReLUs
    return ClassicConv(c_in, Conv("", c_out, kernel, stride, bn=bn, act=act))


class InceptionModule(nn.Module):
    """Four branches on the same input, concatenated (Szegedy et al. 2015, Fig. 2b)."""

    def __init__(self, in_channels: int, row: Inception) -> None:
        super().__init__()
        self.b1 = _conv(in_channels, row.c1, 1)
        self.b2_reduce = _conv(in_channels, row.c3_reduce, 1)
        self.b2 = _conv(row.c3_reduce, row.c3, 3)
        self.b3_reduce = _conv(in_channels, row.c5_reduce, 1)
        self.b3 = _conv(row.c5_reduce, row.c5, 5)
        self.b4_pool = nn.MaxPool2d(3, 1, 1, ceil_mode=True)
        self.b4 = _conv(in_channels, row.pool_proj, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.b1(x),
                self.b2(self.b2_reduce(x)),
                self.b3(self.b3_reduce(x)),
                self.b4(self.b4_pool(x)),
            ],
            1,
        )


class ResidualBlock(nn.Module):
    """ResNet basic or bottleneck block: convs with BatchNorm, shortcut, ReLU after the
    sum (He et al. 2016, Fig. 5)."""

    def __init__(self, in_channels: int, row: Residual) -> None:
        super().__init__()
        w, s = row.width, row.stride
        self.relu = nn.ReLU(inplace=True)
        if row.kind == "basic":
            self.conv1 = _conv(in_channels, w, 3, s, bn=True)
            self.conv2 = _conv(w, row.out, 3, bn=True)
            self.conv3: nn.Module = nn.Identity()
        else:
            self.conv1 = _conv(in_channels, w, 1, s, bn=True)
            self.conv2 = _conv(w, w, 3, bn=True)
            self.conv3 = _conv(w, row.out, 1, bn=True)
        self.bottleneck = row.kind != "basic"
        self.shortcut: nn.Module = (
            _conv(in_channels, row.out, 1, s, bn=True)
            if s != 1 or in_channels != row.out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        if self.bottleneck:
            out = self.conv3(self.relu(out))
        return self.relu(out + self.shortcut(x))


class ClassicLinear(nn.Module):
    """Dropout, then a fully connected layer with bias, then the activation."""

    def __init__(self, in_features: int, row: Linear) -> None:
        super().__init__()
        self.dropout = nn.Dropout(row.dropout)
        self.linear = nn.Linear(in_features, row.out)
        self.act = _act(row.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(self.dropout(x)))


class ClassicNet(nn.Sequential):
    """The rows of a ``ClassicSpec`` in order; a ``flatten`` child before the first
    fully connected row."""

    def __init__(self, spec: ClassicSpec) -> None:
        children: OrderedDict[str, nn.Module] = OrderedDict()
        for shape in spec.shapes():
            row, c = shape.layer, shape.in_channels
            if isinstance(row, Conv):
                children[row.name] = ClassicConv(c, row)
            elif isinstance(row, Pool):
                pool = nn.MaxPool2d if row.kind == "max" else nn.AvgPool2d
                children[row.name] = pool(row.kernel, row.stride, row.padding, ceil_mode=row.ceil)
            elif isinstance(row, LRN):
                children[row.name] = nn.LocalResponseNorm(row.size, 1e-4, 0.75, 2.0)
            elif isinstance(row, GlobalPool):
                children[row.name] = nn.AdaptiveAvgPool2d(1)
            elif isinstance(row, Linear):
                if "flatten" not in children:
                    children["flatten"] = nn.Flatten(1)
                children[row.name] = ClassicLinear(c * shape.in_size**2, row)
            elif isinstance(row, Inception):
                children[row.name] = InceptionModule(c, row)
            elif isinstance(row, Residual):
                children[row.name] = ResidualBlock(c, row)
        super().__init__(children)
        self.spec = spec
        _init_weights(self)


def build_classic(spec: ClassicSpec, seed: int | None = 0) -> ClassicNet:
    """Build the network; weights initialised from ``seed`` (None: torch's global RNG)
    with the MobileNet builder's scheme."""
    if seed is None:
        return ClassicNet(spec)
    with cpu_seeded(seed):
        return ClassicNet(spec)

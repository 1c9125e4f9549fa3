"""Spec -> torch.nn.Module. The module reads final channel counts from the spec only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from search_space._blocks import BLOCK_TYPES, ConvBnAct, act_layer
from search_space._spec import ArchSpec, BlockSpec, HeadSpec, Part, StemSpec

__all__ = ["Head", "MobileNet", "build_model", "cpu_seeded", "part_module"]


class Head(nn.Module):
    """[1x1 conv] -> global average pool -> [hidden linear + act] -> dropout -> classifier."""

    def __init__(self, in_channels: int, spec: HeadSpec, num_classes: int) -> None:
        super().__init__()
        channels = in_channels
        self.conv: nn.Module = nn.Identity()
        if spec.conv_channels:
            self.conv = ConvBnAct(channels, spec.conv_channels, act=spec.conv_act, bn=spec.conv_bn)
            channels = spec.conv_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.hidden: nn.Module = nn.Identity()
        self.hidden_act: nn.Module = nn.Identity()
        if spec.hidden_features:
            self.hidden = nn.Linear(channels, spec.hidden_features)
            self.hidden_act = act_layer(spec.hidden_act)
            channels = spec.hidden_features
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(self.conv(x)))
        x = self.hidden_act(self.hidden(x))
        return self.classifier(self.dropout(x))


def part_module(part: Part, num_classes: int) -> nn.Module:
    """The module of one stem, block or head: what the network holds under ``part.name``
    and what a latency table times alone."""
    s = part.spec
    if isinstance(s, StemSpec):
        return ConvBnAct(3, s.out_channels, s.kernel, s.stride, act=s.act)
    if isinstance(s, BlockSpec):
        return BLOCK_TYPES[s.kind](s)
    return Head(part.in_channels, s, num_classes)


class MobileNet(nn.Module):
    """stem -> blocks -> head, exactly as the spec says."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        stem, *blocks, head = spec.parts()
        self.stem = part_module(stem, spec.num_classes)
        self.blocks = nn.Sequential(*(part_module(b, spec.num_classes) for b in blocks))
        self.head = part_module(head, spec.num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation (kaiming fan-out convs, N(0, 0.01) linears)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


@contextlib.contextmanager
def cpu_seeded(seed: int) -> Iterator[None]:
    """Within: torch's CPU generator seeded with ``seed`` (what initialises a module built on
    the CPU); after: its state as before. torch.manual_seed would also seed CUDA, XPU and
    MTIA, lazily, recording a stack trace for each (0.24 ms a call against 0.001 ms for the CPU
    generator alone, measured on this 2-core machine), and would leave
    them reseeded after the block: fork_rng(devices=[]) restores the CPU generator only."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def build_model(spec: ArchSpec, seed: int | None = 0) -> MobileNet:
    """Build the network; weights are initialised from ``seed`` (None: torch's global RNG)."""
    if seed is None:
        return MobileNet(spec)
    with cpu_seeded(seed):
        return MobileNet(spec)

"""MobileNet V1, V2, V3-Large and V3-Small as points of the spec space.

Each baseline is a table of block rows copied from its paper, registered by name. Width
is applied here, once, with make_divisible(c * width, 8) as the reference implementations
do (timm ``mobilenetv1_100``, torchvision ``mobilenet_v2`` / ``mobilenet_v3_*``), so the
built modules match their parameter counts to the unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from search_space._errors import SpecError
from search_space._spec import (
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    StemSpec,
    make_divisible,
)

__all__ = [
    "BASELINES",
    "REFERENCE_COUNTS",
    "baseline_names",
    "get_baseline",
    "register_baseline",
]

RE, R6, HS = Activation.RELU, Activation.RELU6, Activation.HSWISH

#: (params, MACs) at width 1.0, 224x224, 1000 classes, as the reference implementations
#: report them (timm mobilenetv1_100; torchvision mobilenet_v2, mobilenet_v3_large,
#: mobilenet_v3_small); MACs are conv + linear multiply-accumulates.
REFERENCE_COUNTS: dict[str, tuple[int, int]] = {
    "mobilenet_v1": (4_231_976, 568_740_352),
    "mobilenet_v2": (3_504_872, 300_774_272),
    "mobilenet_v3_large": (5_483_032, 216_589_760),
    "mobilenet_v3_small": (2_542_856, 56_510_400),
}

BaselineFn = Callable[[float, int, int], ArchSpec]
BASELINES: dict[str, BaselineFn] = {}


def register_baseline(name: str) -> Callable[[BaselineFn], BaselineFn]:
    def register(fn: BaselineFn) -> BaselineFn:
        if name in BASELINES:
            raise ValueError(f"baseline {name!r} is registered twice")
        BASELINES[name] = fn
        return fn

    return register


def baseline_names() -> list[str]:
    return list(BASELINES)


def get_baseline(
    name: str, width: float = 1.0, resolution: int = 224, num_classes: int = 1000
) -> ArchSpec:
    """The named baseline at a width multiplier and input resolution."""
    if name not in BASELINES:
        raise SpecError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width <= 4:
        raise SpecError(f"width must be a number in (0, 4], got {width!r}")
    return BASELINES[name](float(width), resolution, num_classes)


class _Row(NamedTuple):
    """One bottleneck row of a V3 table: kernel, expanded, out, SE, act, stride."""

    kernel: int
    expanded: int
    out: int
    se: bool
    act: Activation
    stride: int


# MobileNetV1 (Howard et al. 2017), Table 1: depthwise-separable blocks (out, stride).
_V1_BLOCKS = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *[(512, 1)] * 5,
    (1024, 2),
    (1024, 1),
]


@register_baseline("mobilenet_v1")
def mobilenet_v1(width: float, resolution: int, num_classes: int) -> ArchSpec:
    def ch(c: int) -> int:
        return make_divisible(c * width)

    stem = StemSpec(ch(32), kernel=3, stride=2, act=RE)  # Table 1: Conv / s2, 3x3x3x32
    blocks, c_in = [], stem.out_channels
    for out, stride in _V1_BLOCKS:
        blocks.append(BlockSpec(BlockKind.DEPTHWISE_SEPARABLE, c_in, ch(out), 3, stride, act=RE))
        c_in = ch(out)
    # Table 1 ends: Avg Pool 7x7, FC 1024 x 1000, Softmax.
    return ArchSpec(stem, tuple(blocks), HeadSpec(dropout=0.0), resolution, num_classes)


# MobileNetV2 (Sandler et al. 2018), Table 2: expansion t, channels c, repeats n, stride s.
_V2_STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


@register_baseline("mobilenet_v2")
def mobilenet_v2(width: float, resolution: int, num_classes: int) -> ArchSpec:
    stem = StemSpec(make_divisible(32 * width), kernel=3, stride=2, act=R6)
    blocks, c_in = [], stem.out_channels
    for t, c, n, s in _V2_STAGES:
        out = make_divisible(c * width)
        for i in range(n):
            mid = round(c_in * t)  # the reference rounds, it does not make_divisible
            blocks.append(
                BlockSpec(
                    BlockKind.INVERTED_RESIDUAL, c_in, out, 3, s if i == 0 else 1, mid, act=R6
                )
            )
            c_in = out
    # Table 2: conv2d 1x1 1280 (kept at 1280 for width < 1, sec. 6.1), avgpool, conv 1x1 k.
    head = HeadSpec(conv_channels=make_divisible(1280 * max(1.0, width)), conv_act=R6, dropout=0.2)
    return ArchSpec(stem, tuple(blocks), head, resolution, num_classes)


def _v3(
    rows: list[_Row],
    hidden: int,
    width: float,
    resolution: int,
    num_classes: int,
) -> ArchSpec:
    def ch(c: int) -> int:
        return make_divisible(c * width)

    stem = StemSpec(ch(16), kernel=3, stride=2, act=HS)
    blocks, c_in = [], stem.out_channels
    for row in rows:
        mid = ch(row.expanded)
        se = make_divisible(mid // 4) if row.se else 0  # sec. 5.3: squeeze to 1/4
        blocks.append(
            BlockSpec(
                BlockKind.INVERTED_RESIDUAL, c_in, ch(row.out), row.kernel, row.stride, mid, se,
                row.act,
            )
        )  # fmt: skip
        c_in = ch(row.out)
    head = HeadSpec(
        conv_channels=6 * c_in,  # 960 = 6 x 160 (Large), 576 = 6 x 96 (Small)
        conv_act=HS,
        hidden_features=ch(hidden),
        hidden_act=HS,
        dropout=0.2,
    )
    return ArchSpec(stem, tuple(blocks), head, resolution, num_classes)


# MobileNetV3 (Howard et al. 2019), Table 1: MobileNetV3-Large.
_V3_LARGE = [
    _Row(3, 16, 16, False, RE, 1),
    _Row(3, 64, 24, False, RE, 2),
    _Row(3, 72, 24, False, RE, 1),
    _Row(5, 72, 40, True, RE, 2),
    _Row(5, 120, 40, True, RE, 1),
    _Row(5, 120, 40, True, RE, 1),
    _Row(3, 240, 80, False, HS, 2),
    _Row(3, 200, 80, False, HS, 1),
    _Row(3, 184, 80, False, HS, 1),
    _Row(3, 184, 80, False, HS, 1),
    _Row(3, 480, 112, True, HS, 1),
    _Row(3, 672, 112, True, HS, 1),
    _Row(5, 672, 160, True, HS, 2),
    _Row(5, 960, 160, True, HS, 1),
    _Row(5, 960, 160, True, HS, 1),
]

# MobileNetV3 (Howard et al. 2019), Table 2: MobileNetV3-Small.
_V3_SMALL = [
    _Row(3, 16, 16, True, RE, 2),
    _Row(3, 72, 24, False, RE, 2),
    _Row(3, 88, 24, False, RE, 1),
    _Row(5, 96, 40, True, HS, 2),
    _Row(5, 240, 40, True, HS, 1),
    _Row(5, 240, 40, True, HS, 1),
    _Row(5, 120, 48, True, HS, 1),
    _Row(5, 144, 48, True, HS, 1),
    _Row(5, 288, 96, True, HS, 2),
    _Row(5, 576, 96, True, HS, 1),
    _Row(5, 576, 96, True, HS, 1),
]


@register_baseline("mobilenet_v3_large")
def mobilenet_v3_large(width: float, resolution: int, num_classes: int) -> ArchSpec:
    # Table 1 tail: conv2d 1x1 960, pool, conv2d 1x1 NBN 1280, conv2d 1x1 NBN k.
    return _v3(_V3_LARGE, 1280, width, resolution, num_classes)


@register_baseline("mobilenet_v3_small")
def mobilenet_v3_small(width: float, resolution: int, num_classes: int) -> ArchSpec:
    # Table 2 tail: conv2d 1x1 576, pool, conv2d 1x1 NBN 1024, conv2d 1x1 NBN k.
    return _v3(_V3_SMALL, 1024, width, resolution, num_classes)

"""Classic reference networks: the CNNs the MobileNet papers compare against.

Reference rows for tables and latency, not points of the search space. Each network is a
table of layer rows copied from its paper (the comment above each table names the table or
figure), registered by name with its default input and the parameter count it is known by.
Where a paper left a choice open or the common implementations differ, the variant built
is written next to the table and in ``ClassicSpec.variant``.

Resolution: networks that end in global average pooling (GoogLeNet, ResNets) take any
resolution their downsampling survives. Networks that flatten a map into a fully connected
layer (LeNet-5, AlexNet, ZFNet, VGG-16) are the paper's layers at that resolution: the
first fully connected layer takes the map the convolutions give, so its parameter count
changes with the resolution (no adaptive pooling is inserted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from search_space._classic_spec import (
    LRN,
    ClassicAct,
    ClassicLayer,
    ClassicSpec,
    Conv,
    GlobalPool,
    Inception,
    Linear,
    Pool,
    Residual,
)
from search_space._errors import SpecError

__all__ = [
    "CLASSICS",
    "ClassicEntry",
    "classic_names",
    "get_classic",
    "register_classic",
]

TANH = ClassicAct.TANH

ClassicFn = Callable[[int], tuple[ClassicLayer, ...]]


@dataclass(frozen=True)
class ClassicEntry:
    """A registered network: its rows up to the classifier (``rows(num_classes)``), default
    input, and the parameter count it is published with at that input."""

    name: str
    title: str
    variant: str
    rows: ClassicFn
    resolution: int
    num_classes: int
    in_channels: int
    params: int


CLASSICS: dict[str, ClassicEntry] = {}


def register_classic(
    name: str,
    title: str,
    variant: str,
    params: int,
    resolution: int = 224,
    num_classes: int = 1000,
    in_channels: int = 3,
) -> Callable[[ClassicFn], ClassicFn]:
    def register(fn: ClassicFn) -> ClassicFn:
        if name in CLASSICS:
            raise ValueError(f"classic network {name!r} is registered twice")
        CLASSICS[name] = ClassicEntry(
            name, title, variant, fn, resolution, num_classes, in_channels, params
        )
        return fn

    return register


def classic_names() -> list[str]:
    return list(CLASSICS)


def get_classic(
    name: str, resolution: int | None = None, num_classes: int | None = None
) -> ClassicSpec:
    """The named network at its default input, or at ``resolution`` / ``num_classes``."""
    entry = CLASSICS.get(name)
    if entry is None:
        raise SpecError(f"unknown classic network {name!r} (known: {', '.join(CLASSICS)})")
    classes = entry.num_classes if num_classes is None else num_classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes <= 0:
        raise SpecError(f"num_classes must be a positive integer, got {classes!r}")
    return ClassicSpec(
        name=name,
        title=entry.title,
        variant=entry.variant,
        layers=entry.rows(classes),
        resolution=entry.resolution if resolution is None else resolution,
        num_classes=classes,
        in_channels=entry.in_channels,
    )


# --- LeNet-5 ----------------------------------------------------------------------------
# LeCun et al. 1998, "Gradient-based learning applied to document recognition", sec. II.B
# and Fig. 2: 32x32 grayscale input, C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5,
# C5 120@1x1, F6 84, output 10.


@register_classic(
    "lenet5",
    "LeNet-5",
    "as commonly re-implemented: C3 fully connected to S2 (not Table I's partial "
    "connections), subsampling as plain 2x2 average pooling (no trainable coefficient), a "
    "linear output layer instead of the Euclidean RBF units; tanh",
    params=61_706,
    resolution=32,
    num_classes=10,
    in_channels=1,
)
def lenet5(num_classes: int) -> tuple[ClassicLayer, ...]:
    return (
        Conv("c1", 6, 5, padding=0, act=TANH),
        Pool("s2", 2, 2, kind="avg"),
        Conv("c3", 16, 5, padding=0, act=TANH),
        Pool("s4", 2, 2, kind="avg"),
        Conv("c5", 120, 5, padding=0, act=TANH),
        Linear("f6", 84, act=TANH),
        Linear("output", num_classes, act=None),
    )


# --- AlexNet ------------------------------------------------------------------------------
# Krizhevsky, Sutskever & Hinton 2012, sec. 3.5 and Fig. 2: five convolutions (96, 256, 384,
# 384, 256), the 2nd, 4th and 5th split into two groups (one per GPU), response
# normalisation after the 1st and 2nd, overlapping 3x3/2 max pooling (sec. 3.4), FC 4096,
# 4096, 1000 with dropout 0.5 on the first two (sec. 4.2). The text says 224x224, but the
# 11x11/4 first layer gives the 55x55 maps of Fig. 2 only from 227x227.


@register_classic(
    "alexnet",
    "AlexNet",
    "the paper's two-group network (conv2, conv4, conv5 with groups=2), LRN, 227x227 "
    "input; the single-tower torchvision form (64-192-384-256-256) has 61,100,840 params",
    params=60_965_224,
    resolution=227,
)
def alexnet(num_classes: int) -> tuple[ClassicLayer, ...]:
    return (
        Conv("conv1", 96, 11, stride=4, padding=0),
        LRN("norm1"),
        Pool("pool1", 3, 2),
        Conv("conv2", 256, 5, groups=2),
        LRN("norm2"),
        Pool("pool2", 3, 2),
        Conv("conv3", 384, 3),
        Conv("conv4", 384, 3, groups=2),
        Conv("conv5", 256, 3, groups=2),
        Pool("pool5", 3, 2),
        Linear("fc6", 4096),
        Linear("fc7", 4096, dropout=0.5),
        Linear("fc8", num_classes, act=None, dropout=0.5),
    )


# --- ZFNet --------------------------------------------------------------------------------
# Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks", Fig. 3 (the
# model of Table 1's "Our replication of Krizhevsky et al., 1 convnet" with the changes of
# sec. 4.1): 224x224 input; 7x7/2 first layer (96 maps, 110x110), 3x3/2 max pooling and
# contrast normalisation after layers 1 and 2, 5x5/2 second layer (256, 26x26), dense 3x3
# layers 384, 384, 256 (no grouping), FC 4096, 4096, C.


@register_classic(
    "zfnet",
    "ZFNet",
    "Fig. 3 of the paper, single tower; pooling rounds up (Caffe) and conv1 pads 1 so "
    "that the maps are 110, 55, 26, 13, 13, 13, 6 as drawn",
    params=62_357_608,
)
def zfnet(num_classes: int) -> tuple[ClassicLayer, ...]:
    return (
        Conv("conv1", 96, 7, stride=2, padding=1),
        Pool("pool1", 3, 2, ceil=True),
        LRN("norm1"),
        Conv("conv2", 256, 5, stride=2, padding=0),
        Pool("pool2", 3, 2, ceil=True),
        LRN("norm2"),
        Conv("conv3", 384, 3),
        Conv("conv4", 384, 3),
        Conv("conv5", 256, 3),
        Pool("pool5", 3, 2, ceil=True),
        Linear("fc6", 4096),
        Linear("fc7", 4096, dropout=0.5),
        Linear("fc8", num_classes, act=None, dropout=0.5),
    )


# --- VGG-16 -------------------------------------------------------------------------------
# Simonyan & Zisserman 2015, Table 1, configuration D: 3x3 convolutions (stride 1, pad 1)
# in five stages of 64, 128, 256, 512, 512 channels, 2x2/2 max pooling after each, FC
# 4096, 4096, 1000 with dropout 0.5 on the first two (sec. 3.1).

_VGG16_STAGES = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


@register_classic("vgg16", "VGG-16", "configuration D of Table 1, no BatchNorm", params=138_357_544)
def vgg16(num_classes: int) -> tuple[ClassicLayer, ...]:
    rows: list[ClassicLayer] = []
    for stage, (channels, depth) in enumerate(_VGG16_STAGES, start=1):
        rows += [Conv(f"conv{stage}_{i}", channels, 3) for i in range(1, depth + 1)]
        rows.append(Pool(f"pool{stage}", 2, 2))
    return (
        *rows,
        Linear("fc6", 4096),
        Linear("fc7", 4096, dropout=0.5),
        Linear("fc8", num_classes, act=None, dropout=0.5),
    )


# --- GoogLeNet ----------------------------------------------------------------------------
# Szegedy et al. 2015, "Going deeper with convolutions", Table 1 (columns #1x1, #3x3
# reduce, #3x3, #5x5 reduce, #5x5, pool proj) and Fig. 3 (the LocalRespNorm layers); 3x3/2
# max pooling rounding up (224 -> 112 -> 56 -> 28 -> 14 -> 7), average pooling, dropout 40%,
# linear. Without the two auxiliary classifiers, which only training uses (sec. 5).

_INCEPTION: list[ClassicLayer] = [
    Inception("inception3a", 64, 96, 128, 16, 32, 32),
    Inception("inception3b", 128, 128, 192, 32, 96, 64),
    Pool("pool3", 3, 2, ceil=True),
    Inception("inception4a", 192, 96, 208, 16, 48, 64),
    Inception("inception4b", 160, 112, 224, 24, 64, 64),
    Inception("inception4c", 128, 128, 256, 24, 64, 64),
    Inception("inception4d", 112, 144, 288, 32, 64, 64),
    Inception("inception4e", 256, 160, 320, 32, 128, 128),
    Pool("pool4", 3, 2, ceil=True),
    Inception("inception5a", 256, 160, 320, 32, 128, 128),
    Inception("inception5b", 384, 192, 384, 48, 128, 128),
]


@register_classic(
    "googlenet",
    "GoogLeNet",
    "Inception v1 as in the paper: 5x5 convolutions in the 5x5 branch, conv biases, no "
    "BatchNorm, LRN, no auxiliary classifiers (torchvision's form, with BatchNorm and 3x3 "
    "in that branch, has 6,624,904 params)",
    params=6_998_552,
)
def googlenet(num_classes: int) -> tuple[ClassicLayer, ...]:
    return (
        Conv("conv1", 64, 7, stride=2),
        Pool("pool1", 3, 2, ceil=True),
        LRN("norm1"),
        Conv("conv2_reduce", 64, 1),
        Conv("conv2", 192, 3),
        LRN("norm2"),
        Pool("pool2", 3, 2, ceil=True),
        *_INCEPTION,
        GlobalPool(),
        Linear("fc", num_classes, act=None, dropout=0.4),
    )


# --- ResNet -------------------------------------------------------------------------------
# He et al. 2016, "Deep residual learning for image recognition", Table 1: conv1 7x7/2 64,
# 3x3/2 max pool, stages conv2_x ... conv5_x (the first block of conv3_x, conv4_x, conv5_x
# downsamples with stride 2), average pool, 1000-d fc. BatchNorm after every conv (sec. 3.4).


def _resnet(
    kind: str, depths: list[int], expansion: int, num_classes: int
) -> tuple[ClassicLayer, ...]:
    rows: list[ClassicLayer] = [Conv("conv1", 64, 7, stride=2, bn=True), Pool("pool1", 3, 2, 1)]
    for stage, depth in enumerate(depths):
        width = 64 * 2**stage
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            rows.append(
                Residual(f"conv{stage + 2}_{i + 1}", kind, width, width * expansion, stride)
            )
    return (*rows, GlobalPool(), Linear("fc", num_classes, act=None))


@register_classic(
    "resnet18", "ResNet-18", "Table 1, basic blocks, projection shortcuts (option B)",
    params=11_689_512,
)  # fmt: skip
def resnet18(num_classes: int) -> tuple[ClassicLayer, ...]:
    return _resnet("basic", [2, 2, 2, 2], 1, num_classes)


@register_classic(
    "resnet50",
    "ResNet-50",
    "Table 1, bottleneck blocks with the stride in the first 1x1 conv as in the paper's "
    "released model (torchvision's v1.5 strides the 3x3: same params, 4.09G MACs)",
    params=25_557_032,
)
def resnet50(num_classes: int) -> tuple[ClassicLayer, ...]:
    return _resnet("bottleneck", [3, 4, 6, 3], 4, num_classes)

"""The description of a classic reference network: a frozen table of layer rows.

A classic network (LeNet-5 ... ResNet-50) is not an ``ArchSpec``: it has layers a
MobileNet never has (pooling, local response normalisation, Inception modules, residual
blocks, fully connected layers on a flattened map), and it is no point of the search
space. ``ClassicSpec`` is its one source of truth, read by the builder, the counter and the
memory estimate alike, as ``ArchSpec`` is for MobileNets. ``shapes()`` is the one walk over
it that gives every row the map it sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from search_space._errors import SpecError
from search_space._limits import MAX_CLASSES, MAX_RESOLUTION  # a VGG-16 at 2048: 8.6G params

__all__ = [
    "LRN",
    "ClassicAct",
    "ClassicLayer",
    "ClassicSpec",
    "Conv",
    "GlobalPool",
    "Inception",
    "LayerShape",
    "Linear",
    "Pool",
    "Residual",
    "conv_out_size",
    "pool_out_size",
]


class ClassicAct(StrEnum):
    RELU = "relu"
    #: LeNet-5's squashing function (LeCun et al. 1998, Appendix A: 1.7159 tanh(2a/3));
    #: built as plain tanh, which changes no count.
    TANH = "tanh"


@dataclass(frozen=True)
class Conv:
    """kxk convolution (bias, or BatchNorm when ``bn``) and activation. ``padding`` None
    is kernel // 2; ``groups`` 2 is AlexNet's split over two GPUs."""

    name: str
    out: int
    kernel: int
    stride: int = 1
    padding: int | None = None
    groups: int = 1
    bn: bool = False
    act: ClassicAct | None = ClassicAct.RELU

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding


@dataclass(frozen=True)
class Pool:
    """Max or average pooling; ``ceil`` rounds the output size up (Caffe's rule, which
    GoogLeNet's and ZFNet's map sizes need)."""

    name: str
    kernel: int
    stride: int
    padding: int = 0
    ceil: bool = False
    kind: str = "max"


@dataclass(frozen=True)
class LRN:
    """Local response normalisation across channels (Krizhevsky et al. 2012, sec. 3.3:
    n = 5, k = 2, alpha = 1e-4, beta = 0.75); no parameters, no MACs."""

    name: str
    size: int = 5


@dataclass(frozen=True)
class GlobalPool:
    """Average over the whole map (to 1x1)."""

    name: str = "avgpool"


@dataclass(frozen=True)
class Linear:
    """Fully connected layer (bias) on the flattened input, after dropout ``dropout``."""

    name: str
    out: int
    act: ClassicAct | None = ClassicAct.RELU
    dropout: float = 0.0


@dataclass(frozen=True)
class Inception:
    """An Inception module, one row of GoogLeNet's Table 1 (Szegedy et al. 2015): branches
    1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | 3x3 max pool -> 1x1 projection,
    concatenated; every conv has a bias and a ReLU."""

    name: str
    c1: int
    c3_reduce: int
    c3: int
    c5_reduce: int
    c5: int
    pool_proj: int

    @property
    def out(self) -> int:
        return self.c1 + self.c3 + self.c5 + self.pool_proj


@dataclass(frozen=True)
class Residual:
    """A ResNet building block (He et al. 2016, Fig. 5; BatchNorm after every conv).

    ``basic``: 3x3 (stride) -> 3x3, both ``width`` channels. ``bottleneck``: 1x1 ``width``
    (stride, as in the paper and its released models) -> 3x3 ``width`` -> 1x1 ``out``.
    The shortcut is the identity, or a 1x1 projection with BatchNorm when the stride or the
    channels change (option B, sec. 3.3); ReLU after the addition."""

    name: str
    kind: str
    width: int
    out: int
    stride: int = 1


ClassicLayer = Conv | Pool | LRN | GlobalPool | Linear | Inception | Residual


@dataclass(frozen=True)
class LayerShape:
    """One row with the input it sees and the output it gives (square maps). A ``Linear``
    row sees the ``in_channels x in_size x in_size`` map flattened."""

    layer: ClassicLayer
    in_channels: int
    in_size: int
    out_channels: int
    out_size: int


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a convolution; 0 when the kernel does not fit."""
    span = size + 2 * padding - kernel
    return span // stride + 1 if span >= 0 else 0


def pool_out_size(size: int, kernel: int, stride: int, padding: int, ceil: bool) -> int:
    """Output size of a pooling window, PyTorch's rule (with ``ceil``, a last window must
    start inside the input or its left padding)."""
    span = size + 2 * padding - kernel
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _walk(
    layers: tuple[ClassicLayer, ...], resolution: int, in_channels: int
) -> list[LayerShape] | str:
    """The shapes of every row, or the name of the first row whose output map vanishes."""
    out: list[LayerShape] = []
    c, hw = in_channels, resolution
    for layer in layers:
        oc, ohw = c, hw
        if isinstance(layer, Conv):
            oc, ohw = layer.out, conv_out_size(hw, layer.kernel, layer.stride, layer.pad)
        elif isinstance(layer, Pool):
            ohw = pool_out_size(hw, layer.kernel, layer.stride, layer.padding, layer.ceil)
        elif isinstance(layer, GlobalPool):
            ohw = 1
        elif isinstance(layer, Linear):
            oc, ohw = layer.out, 1
        elif isinstance(layer, Inception):
            oc = layer.out
        elif isinstance(layer, Residual):
            oc, ohw = layer.out, conv_out_size(hw, 3, layer.stride, 1)
        if ohw < 1:
            return layer.name
        out.append(LayerShape(layer, c, hw, oc, ohw))
        c, hw = oc, ohw
    return out


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ClassicSpec:
    """A classic network at one input resolution: rows in forward order, the last a
    ``Linear`` to ``num_classes``. ``name`` is its registered name, ``title`` how papers
    write it, ``variant`` which of its published forms the rows build."""

    name: str
    title: str
    variant: str
    layers: tuple[ClassicLayer, ...]
    resolution: int
    num_classes: int
    in_channels: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _positive_int("num_classes", self.num_classes)
        if self.num_classes > MAX_CLASSES:
            raise SpecError(f"num_classes must be at most {MAX_CLASSES:,}, got {self.num_classes}")
        _positive_int("resolution", self.resolution)
        _positive_int("in_channels", self.in_channels)
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise SpecError(f"{self.name}: layer names must be unique")
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, Linear) or last.out != self.num_classes:
            raise SpecError(f"{self.name}: the last layer must be a Linear to the classes")
        if self.resolution > MAX_RESOLUTION:
            raise SpecError(
                f"resolution of {self.name} must be at most {MAX_RESOLUTION}, got {self.resolution}"
            )
        walked = _walk(self.layers, self.resolution, self.in_channels)
        if isinstance(walked, str):
            smallest = next(
                (
                    r
                    for r in range(self.resolution + 1, MAX_RESOLUTION + 1)
                    if not isinstance(_walk(self.layers, r, self.in_channels), str)
                ),
                None,
            )
            raise SpecError(
                f"{self.name} cannot take resolution {self.resolution}: its map vanishes at "
                f"{walked}; the smallest resolution it takes is {smallest}"
            )
        object.__setattr__(self, "_shapes", tuple(walked))

    def shapes(self) -> tuple[LayerShape, ...]:
        """Every row with the map it sees: the one walk the builder's checks, the counter
        and the memory estimate share."""
        shapes: tuple[LayerShape, ...] = self.__dict__["_shapes"]
        return shapes

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The batch-1 input: (1, channels, resolution, resolution)."""
        return (1, self.in_channels, self.resolution, self.resolution)

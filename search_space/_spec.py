"""The architecture spec: the one source of truth for a network.

Every channel count in a spec is final: width multipliers and make_divisible are applied
by whoever *makes* a spec (baselines, the search space), never by the modules, the
counters, the latency table or the exporter that read it (torchvision's
``InvertedResidualConfig`` does the same).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from search_space._errors import SpecError
from search_space._files import parse_json, read_text
from search_space._limits import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_KERNEL,
    MAX_RESOLUTION,
)

__all__ = [
    "ACT_TOKENS",
    "SPEC_FORMAT",
    "Activation",
    "ArchSpec",
    "BlockKind",
    "BlockSpec",
    "HeadSpec",
    "Part",
    "StemSpec",
    "load_spec",
    "make_divisible",
]

SPEC_FORMAT = "nasctl-arch/1"


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``min_value``
    (default ``divisor``) and never more than 10% below ``value``.

    The rule of the MobileNet reference code (TF slim ``_make_divisible``, torchvision).
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class Activation(StrEnum):
    RELU = "relu"
    RELU6 = "relu6"
    HSWISH = "hswish"
    #: x * sigmoid(x) (Ramachandran et al. 2017, "Searching for activation functions"),
    #: EfficientNet's activation; h-swish is its piecewise-linear approximation.
    SWISH = "swish"

    @property
    def token(self) -> str:
        """The short form in an arch string (``_codec``)."""
        return ACT_TOKENS[self]


#: Each activation's token in the arch string; its torch module is ``_blocks.ACT_LAYERS``.
ACT_TOKENS = {
    Activation.RELU: "re",
    Activation.RELU6: "r6",
    Activation.HSWISH: "hs",
    Activation.SWISH: "sw",
}


class BlockKind(StrEnum):
    #: MobileNetV1: depthwise kxk + BN + act, then pointwise 1x1 + BN + act; no residual.
    DEPTHWISE_SEPARABLE = "ds"
    #: MobileNetV2/V3 bottleneck: [1x1 expand + BN + act] -> depthwise kxk + BN + act
    #: -> [SE] -> 1x1 project + BN (linear); residual when stride 1 and in == out.
    INVERTED_RESIDUAL = "ir"


def _positive_int(owner: str, name: str, value: object, top: int = MAX_CHANNELS) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= top:
        raise SpecError(
            f"{owner}.{name} must be a positive integer (at most {top:,}), got {value!r}"
        )


def _activation(owner: str, value: object) -> Activation:
    try:
        return Activation(str(value)) if isinstance(value, str) else Activation(repr(value))
    except ValueError:
        allowed = ", ".join(a.value for a in Activation)
        raise SpecError(f"{owner}.act must be one of {allowed}, got {value!r}") from None


def _kernel(owner: str, value: object) -> None:
    _positive_int(owner, "kernel", value, MAX_KERNEL)
    if isinstance(value, int) and value % 2 == 0:
        raise SpecError(f"{owner}.kernel must be odd, got {value}")


def _stride(owner: str, value: object) -> None:
    if value not in (1, 2) or isinstance(value, bool):
        raise SpecError(f"{owner}.stride must be 1 or 2, got {value!r}")


@dataclass(frozen=True)
class StemSpec:
    """The first, standard convolution: kxk, stride s, 3 -> out_channels, BN, act."""

    out_channels: int
    kernel: int = 3
    stride: int = 2
    act: Activation = Activation.RELU

    def __post_init__(self) -> None:
        _positive_int("stem", "out_channels", self.out_channels)
        _kernel("stem", self.kernel)
        _stride("stem", self.stride)
        object.__setattr__(self, "act", _activation("stem", self.act))


@dataclass(frozen=True)
class BlockSpec:
    """One block with its final channel counts.

    ``mid_channels`` is the expanded width of an inverted residual (equal to
    ``in_channels`` when there is no expansion conv; always ``in_channels`` for a
    depthwise-separable block). ``se_channels`` is the squeeze width of the
    squeeze-and-excitation module placed after the depthwise conv (0 = no SE).
    """

    kind: BlockKind
    in_channels: int
    out_channels: int
    kernel: int = 3
    stride: int = 1
    mid_channels: int = 0
    se_channels: int = 0
    act: Activation = Activation.RELU

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", BlockKind(self.kind))
        except ValueError:
            raise SpecError(f"block.kind must be 'ds' or 'ir', got {self.kind!r}") from None
        _positive_int("block", "in_channels", self.in_channels)
        _positive_int("block", "out_channels", self.out_channels)
        _kernel("block", self.kernel)
        _stride("block", self.stride)
        if self.mid_channels == 0:
            object.__setattr__(self, "mid_channels", self.in_channels)
        _positive_int("block", "mid_channels", self.mid_channels)
        if self.kind is BlockKind.DEPTHWISE_SEPARABLE and self.mid_channels != self.in_channels:
            raise SpecError(
                "block.mid_channels of a depthwise-separable block must equal in_channels "
                f"({self.in_channels}), got {self.mid_channels}"
            )
        if (
            not isinstance(self.se_channels, int)
            or isinstance(self.se_channels, bool)
            or not 0 <= self.se_channels <= MAX_CHANNELS
        ):
            raise SpecError(
                f"block.se_channels must be an integer from 0 to {MAX_CHANNELS:,}, "
                f"got {self.se_channels!r}"
            )
        object.__setattr__(self, "act", _activation("block", self.act))

    @property
    def expansion(self) -> float:
        return self.mid_channels / self.in_channels

    @property
    def has_expand_conv(self) -> bool:
        return self.kind is BlockKind.INVERTED_RESIDUAL and self.mid_channels != self.in_channels

    @property
    def has_se(self) -> bool:
        return self.se_channels > 0

    @property
    def has_residual(self) -> bool:
        return (
            self.kind is BlockKind.INVERTED_RESIDUAL
            and self.stride == 1
            and self.in_channels == self.out_channels
        )


@dataclass(frozen=True)
class HeadSpec:
    """The classifier head: [1x1 conv + (BN | bias) + act] -> global average pool ->
    [hidden linear + act, no BN] -> dropout -> linear to the classes.

    MobileNetV2 uses the conv only; V3 both (its hidden layer is the paper's "NBN" 1x1
    conv after pooling, which is a linear layer); V1 neither.
    """

    conv_channels: int = 0
    conv_bn: bool = True
    conv_act: Activation = Activation.RELU
    hidden_features: int = 0
    hidden_act: Activation = Activation.HSWISH
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("conv_channels", "hidden_features"):
            value = getattr(self, name)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= MAX_CHANNELS
            ):
                raise SpecError(
                    f"head.{name} must be an integer from 0 to {MAX_CHANNELS:,}, got {value!r}"
                )
        if not isinstance(self.conv_bn, bool):
            raise SpecError(f"head.conv_bn must be true or false, got {self.conv_bn!r}")
        object.__setattr__(self, "conv_act", _activation("head", self.conv_act))
        object.__setattr__(self, "hidden_act", _activation("head", self.hidden_act))
        # A layer that is absent has no settings: keep the defaults, so that equal networks
        # are equal specs and the arch string (which omits absent layers) round-trips.
        if self.conv_channels == 0:
            object.__setattr__(self, "conv_bn", True)
            object.__setattr__(self, "conv_act", Activation.RELU)
        if self.hidden_features == 0:
            object.__setattr__(self, "hidden_act", Activation.HSWISH)
        if (
            not isinstance(self.dropout, int | float)
            or isinstance(self.dropout, bool)
            or not 0.0 <= self.dropout < 1.0
        ):
            raise SpecError(f"head.dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "dropout", float(self.dropout))


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a 'same'-padded convolution (padding kernel // 2)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class Part:
    """One stem, block or head of a network with the input it sees (square maps)."""

    name: str
    in_size: int
    out_size: int
    in_channels: int
    spec: StemSpec | BlockSpec | HeadSpec


#: Input resolutions must be multiples of this (keeps feature maps aligned for deployment).
RESOLUTION_MULTIPLE = 8


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem -> blocks -> head, at one input resolution."""

    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec = field(default_factory=HeadSpec)
    resolution: int = 224
    num_classes: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise SpecError("blocks must hold at least one block")
        if len(self.blocks) > MAX_BLOCKS:
            raise SpecError(f"blocks must be at most {MAX_BLOCKS:,}, got {len(self.blocks):,}")
        _positive_int("arch", "num_classes", self.num_classes, MAX_CLASSES)
        channels = self.stem.out_channels
        for i, block in enumerate(self.blocks):
            if block.in_channels != channels:
                raise SpecError(
                    f"blocks[{i}].in_channels must equal the previous output ({channels}), "
                    f"got {block.in_channels}"
                )
            channels = block.out_channels
        res = self.resolution
        if (
            not isinstance(res, int)
            or isinstance(res, bool)
            or res <= 0
            or res % RESOLUTION_MULTIPLE
            or res < self.total_stride
            or res > MAX_RESOLUTION
        ):
            raise SpecError(
                f"resolution must be a positive multiple of {RESOLUTION_MULTIPLE}, at least "
                f"the network's total stride ({self.total_stride}) and at most "
                f"{MAX_RESOLUTION}, got {res!r}"
            )

    @property
    def total_stride(self) -> int:
        stride = self.stem.stride
        for block in self.blocks:
            stride *= block.stride
        return stride

    def parts(self) -> tuple[Part, ...]:
        """The network as stem, blocks and head, each with the spatial size it sees.

        The one walk over a spec that the counters and the latency table share; a part's
        ``name`` is its module name in the built network (``stem``, ``blocks.3``, ``head``).
        """
        parts = []
        hw = self.resolution
        out = conv_out_size(hw, self.stem.kernel, self.stem.stride)
        parts.append(Part("stem", hw, out, 3, self.stem))
        hw, channels = out, self.stem.out_channels
        for i, block in enumerate(self.blocks):
            out = conv_out_size(hw, block.kernel, block.stride)
            parts.append(Part(f"blocks.{i}", hw, out, channels, block))
            hw, channels = out, block.out_channels
        parts.append(Part("head", hw, 1, channels, self.head))
        return tuple(parts)

    @property
    def features(self) -> int:
        """Channels that reach the global pool."""
        return self.head.conv_channels or self.blocks[-1].out_channels

    # --- serialization -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        def plain(obj: Any) -> dict[str, Any]:
            return {f.name: _plain_value(getattr(obj, f.name)) for f in fields(obj)}

        return {
            "format": SPEC_FORMAT,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "stem": plain(self.stem),
            "blocks": [plain(b) for b in self.blocks],
            "head": plain(self.head),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: object) -> ArchSpec:
        if not isinstance(data, dict):
            raise SpecError("spec must be a JSON object")
        data = dict(data)
        fmt = data.pop("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise SpecError(f"format must be {SPEC_FORMAT!r}, got {fmt!r}")
        _check_keys("spec", data, {"resolution", "num_classes", "stem", "blocks", "head"})
        for key in ("stem", "blocks"):
            if key not in data:
                raise SpecError(f"spec.{key} is required")
        blocks = data["blocks"]
        if not isinstance(blocks, list):
            raise SpecError("spec.blocks must be a list of block objects")
        return cls(
            stem=_make(StemSpec, "stem", data["stem"]),
            blocks=tuple(_make(BlockSpec, f"blocks[{i}]", b) for i, b in enumerate(blocks)),
            head=_make(HeadSpec, "head", data.get("head", {})),
            resolution=data.get("resolution", 224),
            num_classes=data.get("num_classes", 1000),
        )

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.from_dict(parse_json(text, "spec"))

    def replace(self, **changes: Any) -> ArchSpec:
        """A copy with some top-level fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return ArchSpec(**values)


def _plain_value(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def _check_keys(owner: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(
            f"{owner} has unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _make(cls: type, owner: str, data: object) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{owner} must be a JSON object")
    _check_keys(owner, data, {f.name for f in fields(cls)})
    try:
        return cls(**data)
    except TypeError as exc:  # a required field is missing
        raise SpecError(f"{owner}: {exc}") from None


def load_spec(path: str | Path) -> ArchSpec:
    """Read a spec JSON file."""
    path = Path(path)
    text = read_text(path, "spec file")
    try:
        return ArchSpec.from_json(text)
    except SpecError as exc:
        raise SpecError(f"spec file {str(path)!r}: {exc}") from None

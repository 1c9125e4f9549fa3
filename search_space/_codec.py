"""The compact one-line form of an ``ArchSpec`` (a serialization only; the spec is the truth).

Grammar (elements joined by ``,``; tokens inside an element joined by ``_``)::

    arch   := header "," stem ("," block)+ "," head
    header := "r" RES "_n" CLASSES                      input resolution, number of classes
    stem   := "stem_k" K "_s" S "_c" C "_" ACT
    block  := KIND "_k" K "_s" S [EXP] "_c" C [SE] "_" ACT
    KIND   := "ir" (inverted residual) | "ds" (depthwise separable)
    EXP    := "e" RATIO  -> mid = make_divisible(in * RATIO, 8)
            | "m" C      -> mid = C exactly                (absent: mid = in, no expand conv)
    SE     := "se" RATIO -> squeeze = make_divisible(mid * RATIO, 8)
            | "sc" C     -> squeeze = C exactly             (absent: no SE)
    head   := "head" ["_c" C ["_nbn"] "_" ACT] ["_h" C "_" ACT] "_d" DROPOUT
    ACT    := an activation's token (``_spec.ACT_TOKENS``): "re" (ReLU) | "r6" (ReLU6)
              | "hs" (h-swish) | ...

Example, the first blocks of MobileNetV3-Large::

    r224_n1000,stem_k3_s2_c16_hs,ir_k3_s1_c16_re,ir_k3_s2_e4_c24_re,ir_k5_s2_e3_c40_se0.25_re,...
    ...,head_c960_hs_h1280_hs_d0.2

A block's input channels are the previous element's output. Tokens of a block may come
in any order when parsing; ``format_arch`` writes them in the order above, choosing the
shortest ratio that reproduces the exact channel count, else the exact count, so that
``parse_arch(format_arch(spec)) == spec`` always holds.
"""

from __future__ import annotations

import re

from search_space._errors import SpecError
from search_space._spec import (
    ACT_TOKENS,
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    StemSpec,
    make_divisible,
)

__all__ = ["format_arch", "looks_like_arch", "parse_arch"]

_TOKEN_ACT = {v: k for k, v in ACT_TOKENS.items()}
_HEADER = re.compile(r"^r(\d+)_n(\d+)$", re.ASCII)  # ASCII digits, not any Unicode digit
_VALUE = re.compile(r"^(se|sc|k|s|e|m|c|h|d)(\d+(?:\.\d+)?)$", re.ASCII)


def looks_like_arch(text: str) -> bool:
    """True when ``text`` is meant as an arch string (starts with a header element)."""
    return bool(re.match(r"^r\d+_n\d+,", text.strip(), re.ASCII))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _ratio_token(
    base: int, target: int, ratio_prefix: str, exact_prefix: str, preferred: float = 0.0
) -> str:
    """``preferred`` or the shortest ``<ratio_prefix>R`` with make_divisible(base * R) ==
    target, else the exact count."""
    candidates = [preferred] + [round(target / base, digits) for digits in range(4)]
    for ratio in candidates:
        if ratio > 0 and make_divisible(base * ratio) == target:
            return f"{ratio_prefix}{_num(ratio)}"
    return f"{exact_prefix}{target}"


def format_arch(spec: ArchSpec) -> str:
    parts = [f"r{spec.resolution}_n{spec.num_classes}"]
    st = spec.stem
    parts.append(f"stem_k{st.kernel}_s{st.stride}_c{st.out_channels}_{st.act.token}")
    for b in spec.blocks:
        tokens = [b.kind.value, f"k{b.kernel}", f"s{b.stride}"]
        if b.mid_channels != b.in_channels:
            tokens.append(_ratio_token(b.in_channels, b.mid_channels, "e", "m"))
        tokens.append(f"c{b.out_channels}")
        if b.se_channels:
            tokens.append(_ratio_token(b.mid_channels, b.se_channels, "se", "sc", 0.25))
        tokens.append(b.act.token)
        parts.append("_".join(tokens))
    h = spec.head
    tokens = ["head"]
    if h.conv_channels:
        tokens.append(f"c{h.conv_channels}")
        if not h.conv_bn:
            tokens.append("nbn")
        tokens.append(h.conv_act.token)
    if h.hidden_features:
        tokens += [f"h{h.hidden_features}", h.hidden_act.token]
    tokens.append(f"d{_num(h.dropout)}")
    parts.append("_".join(tokens))
    return ",".join(parts)


def parse_arch(text: str) -> ArchSpec:
    """Parse an arch string; every error is a ``SpecError`` naming the element."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("arch string is empty")
    elements = text.strip().split(",")
    if len(elements) < 4:
        raise SpecError(
            "arch string must have a header, a stem, at least one block and a head "
            "separated by ',' (e.g. 'r224_n1000,stem_k3_s2_c16_hs,ir_k3_s1_c16_re,head_d0')"
        )
    header = _HEADER.match(elements[0])
    if not header:
        raise SpecError(
            f"arch string element 0 {elements[0]!r}: header must be r<resolution>_n<classes>"
        )
    stem = _parse_element(1, elements[1], lambda t: _parse_stem(t))
    blocks = []
    channels = stem.out_channels
    for i, element in enumerate(elements[2:-1], start=2):
        block = _parse_element(i, element, lambda t, c=channels: _parse_block(t, c))
        blocks.append(block)
        channels = block.out_channels
    head = _parse_element(len(elements) - 1, elements[-1], _parse_head)
    try:
        return ArchSpec(
            stem=stem,
            blocks=tuple(blocks),
            head=head,
            resolution=int(header.group(1)),
            num_classes=int(header.group(2)),
        )
    except SpecError as exc:
        raise SpecError(f"arch string: {exc}") from None


def _parse_element(index, element, parse):  # type: ignore[no-untyped-def]
    try:
        return parse(element.split("_"))
    except SpecError as exc:
        raise SpecError(f"arch string element {index} {element!r}: {exc}") from None


def _values(tokens: list[str], allowed: str) -> tuple[dict[str, float], Activation | None]:
    values: dict[str, float] = {}
    act: Activation | None = None
    for token in tokens:
        if token in _TOKEN_ACT:
            if act is not None:
                raise SpecError("activation given twice")
            act = _TOKEN_ACT[token]
            continue
        m = _VALUE.match(token)
        if not m or m.group(1) not in allowed.split():
            raise SpecError(f"unknown token {token!r}")
        key = m.group(1)
        if key in values:
            raise SpecError(f"token {key!r} given twice")
        values[key] = float(m.group(2))
    return values, act


def _int(values: dict[str, float], key: str, name: str) -> int:
    if key not in values:
        raise SpecError(f"{name} ({key}<n>) is required")
    value = values[key]
    if not value.is_integer():
        raise SpecError(f"{name} ({key}) must be a whole number, got {value:g}")
    return int(value)


def _parse_stem(tokens: list[str]) -> StemSpec:
    if tokens[0] != "stem":
        raise SpecError("element 1 must be the stem ('stem_k3_s2_c16_hs')")
    values, act = _values(tokens[1:], "k s c")
    return StemSpec(
        out_channels=_int(values, "c", "output channels"),
        kernel=_int(values, "k", "kernel") if "k" in values else 3,
        stride=_int(values, "s", "stride") if "s" in values else 2,
        act=act or Activation.RELU,
    )


def _parse_block(tokens: list[str], in_channels: int) -> BlockSpec:
    if tokens[0] not in ("ir", "ds"):
        raise SpecError(f"block kind must be 'ir' or 'ds', got {tokens[0]!r}")
    kind = BlockKind(tokens[0])
    values, act = _values(tokens[1:], "k s e m c se sc")
    if "e" in values and "m" in values:
        raise SpecError("give either e<ratio> or m<channels>, not both")
    if "se" in values and "sc" in values:
        raise SpecError("give either se<ratio> or sc<channels>, not both")
    if "e" in values:
        if values["e"] <= 0:
            raise SpecError("expansion ratio (e) must be positive")
        mid = make_divisible(in_channels * values["e"])
    elif "m" in values:
        mid = _int(values, "m", "mid channels")
    else:
        mid = in_channels
    if "se" in values:
        if not 0 < values["se"] <= 1:
            raise SpecError("SE ratio (se) must be in (0, 1]")
        se = make_divisible(mid * values["se"])
    elif "sc" in values:
        se = _int(values, "sc", "SE channels")
    else:
        se = 0
    return BlockSpec(
        kind=kind,
        in_channels=in_channels,
        out_channels=_int(values, "c", "output channels"),
        kernel=_int(values, "k", "kernel") if "k" in values else 3,
        stride=_int(values, "s", "stride") if "s" in values else 1,
        mid_channels=mid,
        se_channels=se,
        act=act or Activation.RELU,
    )


def _parse_head(tokens: list[str]) -> HeadSpec:
    if tokens[0] != "head":
        raise SpecError("the last element must be the head ('head_c960_hs_h1280_hs_d0.2')")
    conv = hidden = 0
    conv_bn = True
    conv_act, hidden_act = Activation.RELU, Activation.HSWISH
    dropout = 0.0
    seen: set[str] = set()
    i = 1
    while i < len(tokens):
        token = tokens[i]
        m = _VALUE.match(token)
        key = m.group(1) if m else token
        if key in seen:
            raise SpecError(f"token {key!r} given twice")
        seen.add(key)
        if m and key in ("c", "h"):
            number = float(m.group(2))
            if not number.is_integer():
                raise SpecError(f"{key} must be a whole number, got {number:g}")
            j = i + 1
            bn = True
            if key == "c" and j < len(tokens) and tokens[j] == "nbn":
                bn, j = False, j + 1
            if j >= len(tokens) or tokens[j] not in _TOKEN_ACT:
                raise SpecError(
                    f"{token!r} must be followed by an activation ({', '.join(_TOKEN_ACT)})"
                )
            if key == "c":
                conv, conv_bn, conv_act = int(number), bn, _TOKEN_ACT[tokens[j]]
            else:
                hidden, hidden_act = int(number), _TOKEN_ACT[tokens[j]]
            i = j + 1
        elif m and key == "d":
            dropout = float(m.group(2))
            i += 1
        else:
            raise SpecError(f"unknown token {token!r}")
    return HeadSpec(
        conv_channels=conv,
        conv_bn=conv_bn,
        conv_act=conv_act,
        hidden_features=hidden,
        hidden_act=hidden_act,
        dropout=dropout,
    )

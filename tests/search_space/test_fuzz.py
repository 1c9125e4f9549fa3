"""Property tests: random and mutated arch strings and space files either load or raise
the one documented error (SpecError / SpaceError, both NasctlError), never anything else."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from search_space import (
    ArchSpec,
    NasctlError,
    SearchSpace,
    SpaceError,
    SpecError,
    baseline_names,
    default_space_text,
    format_arch,
    get_baseline,
    load_space,
    parse_arch,
)
from tests.results.conftest import TINY_SPACE

_SEEDS = [
    format_arch(get_baseline(name, width, resolution, classes))
    for name in baseline_names()
    for width, resolution, classes in ((1.0, 224, 1000), (0.5, 32, 10), (0.75, 96, 3))
]
_NUMBERS = st.sampled_from(
    ["0", "1", "-1", "3", "0.25", "1e9", "99999999999999999999", "nan", "inf", "", "1.", ".5",
     "0.0000001", "7", "2.5", "00", "1_0", "٣"]
)  # fmt: skip
_TOKENS = st.sampled_from(
    ["ir", "ds", "stem", "head", "re", "r6", "hs", "nbn", "k3", "k0", "s1", "s0", "e6", "e0",
     "m0", "c0", "c16", "se0.25", "se0", "sc0", "sc8", "h0", "d0.2", "d1", "d-1", "r0_n0",
     "r32_n10", "x", "", " ", "__", ",", "k5_s2", "e1.0", "m8", "c1", "se2"]
)  # fmt: skip


@st.composite
def _mutated_arch(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        elements = text.split(",")
        i = draw(st.integers(0, len(elements) - 1))
        tokens = elements[i].split("_")
        j = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["number", "token", "drop", "dup", "swap", "char", "elem"]))
        if op == "number":
            tokens[j] = re.sub(r"[\d.]+", draw(_NUMBERS), tokens[j], count=1)
        elif op == "token":
            tokens[j] = draw(_TOKENS)
        elif op == "drop":
            del tokens[j]
        elif op == "dup":
            tokens.insert(j, tokens[j])
        elif op == "swap":
            k = draw(st.integers(0, len(elements) - 1))
            elements[i], elements[k] = elements[k], elements[i]
        elif op == "char":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(st.characters()) + text[pos + 1 :]
            continue
        else:
            if draw(st.booleans()):
                del elements[i]
            else:
                elements.insert(i, elements[i])
        elements[i : i + 1] = ["_".join(tokens)] if i < len(elements) else []
        text = ",".join(elements)
    return text


def _check_spec(spec: ArchSpec) -> None:
    assert isinstance(spec, ArchSpec)
    assert parse_arch(format_arch(spec)) == spec


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_mutated_arch(), st.text(max_size=80)))
def test_parse_arch_returns_a_spec_or_raises_spec_error(text: str) -> None:
    try:
        spec = parse_arch(text)
    except SpecError as exc:
        assert str(exc) and isinstance(exc, NasctlError)
        return
    _check_spec(spec)


_TOML_VALUES = st.sampled_from(
    ["0", "-1", "1", "2", "3", "0.5", "1e9", "nan", "inf", "true", "false", '"relu"', '"x"',
     "[]", "[0]", "[1, 1]", "[-1]", "[3, 5]", "[0.0]", "[true]", '["relu", "hswish"]',
     '["x"]', "{}", "[[1]]", "99999999999999999999", "1979-05-27", '""', "[1.5]", "[100]"]
)  # fmt: skip


@st.composite
def _mutated_toml(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from([TINY_SPACE, default_space_text()])).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["value", "value", "drop", "dup", "char", "key"]))
        if op == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(_TOML_VALUES)}"
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "key" and "=" in lines[i]:
            lines[i] = draw(st.sampled_from(["depth", "kernel", "widths", "x", "stride"])) + (
                " =" + lines[i].split("=", 1)[1]
            )
        else:
            pos = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + draw(st.characters()) + lines[i][pos + 1 :]
        if not lines:
            break
    return "\n".join(lines)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_mutated_toml(), st.text(max_size=60)))
def test_load_space_returns_a_space_or_raises_space_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            space = load_space(path)
        except SpaceError as exc:
            assert str(exc) and isinstance(exc, NasctlError)
            return
    assert isinstance(space, SearchSpace) and space.size >= 1
    try:
        spec = space.random_spec(0, 10)
    except NasctlError:
        return  # e.g. a resolution too small for the stride: refused with a sentence
    _check_spec(spec)

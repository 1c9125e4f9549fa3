"""Every field of a space file is type-checked: a value of the wrong TOML type is
refused with a sentence naming the field and the rule (``conv_bn = "false"`` is not
true)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from search_space import SearchSpace, SpaceError
from search_space._space_file import _HEAD, _STAGE, _STEM, _TOP

#: A space that sets every field.
GOOD: dict[str, Any] = {
    "name": "all",
    "widths": [0.5, 1.0],
    "resolutions": [32],
    "se_ratio": 0.25,
    "stem": {"channels": 8, "kernel": 3, "stride": 2, "act": "hswish"},
    "head": {
        "conv_channels": 32,
        "conv_bn": False,
        "hidden_features": 64,
        "act": "hswish",
        "hidden_act": "relu",
        "dropout": 0.1,
    },
    "stages": [
        {
            "channels": 16,
            "stride": 2,
            "depth": [1, 2],
            "kernel": [3, 5],
            "expansion": [1, 3.5],
            "se": [False, True],
            "act": ["relu", "hswish"],
        },
    ],
}

NUMBER = "must be a number in"
POSITIVE = "must be a positive integer"

# (field, wrong value, the error: field name and rule)
CASES: list[tuple[str, Any, str]] = [
    ("name", 1, "name must be a non-empty string"),
    ("name", "", "name must be a non-empty string"),
    ("widths", 1.0, "widths must be a list of choices"),
    ("widths", ["1.0"], r"widths\[0\] must be a number in \(0, 4\]"),
    ("widths", [True], r"widths\[0\] must be a number in \(0, 4\]"),
    ("resolutions", "32", "resolutions must be a list of choices"),
    ("resolutions", [32.0], r"resolutions\[0\] must be a positive multiple of"),
    ("resolutions", [True], r"resolutions\[0\] must be a positive multiple of"),
    ("se_ratio", "0.25", r"se_ratio must be in \(0, 1\]"),
    ("se_ratio", True, r"se_ratio must be in \(0, 1\]"),
    ("se_ratio", [0.25], r"se_ratio must be in \(0, 1\]"),
    ("stem", 8, "stem must be a table"),
    ("stem.channels", 8.0, f"stem.channels {POSITIVE}"),
    ("stem.channels", "8", f"stem.channels {POSITIVE}"),
    ("stem.channels", True, f"stem.channels {POSITIVE}"),
    ("stem.kernel", 3.0, "stem.kernel must be an odd positive integer"),
    ("stem.kernel", "3", "stem.kernel must be an odd positive integer"),
    ("stem.stride", "2", "stem.stride must be 1 or 2"),
    ("stem.stride", True, "stem.stride must be 1 or 2"),
    ("stem.act", 1, "stem.act must be one of"),
    ("stem.act", ["relu"], "stem.act must be one of"),
    ("stem.act", True, "stem.act must be one of"),
    ("head", "none", "head must be a table"),
    ("head.conv_channels", "32", "head.conv_channels must be an integer >= 0"),
    ("head.conv_channels", 32.5, "head.conv_channels must be an integer >= 0"),
    ("head.conv_channels", False, "head.conv_channels must be an integer >= 0"),
    ("head.conv_bn", "false", "head.conv_bn must be true or false"),
    ("head.conv_bn", "true", "head.conv_bn must be true or false"),
    ("head.conv_bn", 0, "head.conv_bn must be true or false"),
    ("head.conv_bn", [True], "head.conv_bn must be true or false"),
    ("head.hidden_features", "64", "head.hidden_features must be an integer >= 0"),
    ("head.hidden_features", 64.0, "head.hidden_features must be an integer >= 0"),
    ("head.act", ["hswish"], "head.act must be one of"),
    ("head.act", 0, "head.act must be one of"),
    ("head.hidden_act", False, "head.hidden_act must be one of"),
    ("head.dropout", "0.1", r"head.dropout must be in \[0, 1\)"),
    ("head.dropout", True, r"head.dropout must be in \[0, 1\)"),
    ("stages", {"channels": 16}, "stages must be a non-empty list"),
    ("stages", [], "stages must be a non-empty list"),
    ("stages", [1], r"stages\[0\] must be a table"),
    ("stages.channels", "16", rf"stages\[0\].channels {POSITIVE}"),
    ("stages.channels", 16.0, rf"stages\[0\].channels {POSITIVE}"),
    ("stages.stride", 2.0, r"stages\[0\].stride must be 1 or 2"),
    ("stages.stride", False, r"stages\[0\].stride must be 1 or 2"),
    ("stages.depth", 1, r"stages\[0\].depth must be a list of choices"),
    ("stages.depth", [1.0], r"stages\[0\].depth\[0\] must be an integer from 1 to 20"),
    ("stages.depth", ["1"], r"stages\[0\].depth\[0\] must be an integer from 1 to 20"),
    ("stages.depth", [True], r"stages\[0\].depth\[0\] must be an integer from 1 to 20"),
    ("stages.kernel", 3, r"stages\[0\].kernel must be a list of choices"),
    ("stages.kernel", [3.0], r"stages\[0\].kernel\[0\] must be an odd integer from 1 to 11"),
    ("stages.kernel", ["3"], r"stages\[0\].kernel\[0\] must be an odd integer from 1 to 11"),
    ("stages.expansion", 3, r"stages\[0\].expansion must be a list of choices"),
    ("stages.expansion", ["3"], r"stages\[0\].expansion\[0\] must be a number from 1 to 12"),
    ("stages.expansion", [True], r"stages\[0\].expansion\[0\] must be a number from 1 to 12"),
    ("stages.se", False, r"stages\[0\].se must be a list of choices"),
    ("stages.se", ["false"], r"stages\[0\].se\[0\] must be true or false"),
    ("stages.se", [0], r"stages\[0\].se\[0\] must be true or false"),
    ("stages.act", "relu", r"stages\[0\].act must be a list of choices"),
    ("stages.act", ["relu", 1], r"stages\[0\].act\[1\] must be one of"),
    ("stages.act", [True], r"stages\[0\].act\[0\] must be one of"),
]


def _value(v: Any) -> str:
    """A TOML value (JSON writes strings, numbers and arrays as TOML does)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def _toml(data: dict[str, Any]) -> str:
    """The space as TOML: plain keys first, then tables; a list of tables as [[stages]]."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables += [f"[{key}]", *(f"{k} = {_value(v)}" for k, v in value.items())]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                tables += [f"[[{key}]]", *(f"{k} = {_value(v)}" for k, v in table.items())]
        else:
            lines.append(f"{key} = {_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _with(field: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    owner, _, key = field.partition(".")
    if not key:
        data[owner] = value
    elif owner == "stages":
        data["stages"][0][key] = value
    else:
        data[owner][key] = value
    return data


def test_the_space_with_every_field_loads() -> None:
    space = SearchSpace.from_text(_toml(GOOD))
    assert space.head.conv_bn is False and space.stages[0].se == (False, True)


def test_every_field_has_a_case() -> None:
    fields = {f for f, _, _ in CASES}
    every = _TOP | {f"stem.{k}" for k in _STEM} | {f"head.{k}" for k in _HEAD}
    assert fields == every | {f"stages.{k}" for k in _STAGE}


@pytest.mark.parametrize(("field", "value", "message"), CASES)
def test_a_value_of_the_wrong_type_is_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(SpaceError, match=rf"^space: {message}"):
        SearchSpace.from_text(_toml(_with(field, value)))

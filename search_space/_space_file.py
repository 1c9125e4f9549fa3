"""Reading a space: the built-in space files, a space file by path or name, and the type
checks that turn its TOML into a :class:`SearchSpace`.

A space is a TOML file (``spaces/default.toml`` is the built-in one, written to be copied
and edited): a stem, stages with per-stage depth choices and per-block choices (kernel,
expansion, SE on/off, activation), a head, and sets of widths and resolutions.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from search_space._errors import SpaceError
from search_space._space import SearchSpace
from search_space._space_choices import StageSpace
from search_space._spec import RESOLUTION_MULTIPLE, Activation, HeadSpec, StemSpec

__all__ = [
    "BUILTIN_SPACES",
    "builtin_space_text",
    "default_space_text",
    "load_space",
    "space_source",
]


#: The spaces shipped in ``search_space/spaces``, by the name ``--space`` takes.
BUILTIN_SPACES = ("default", "photos", "tiny")


def builtin_space_text(name: str) -> str:
    """The text of a space file shipped in ``search_space/spaces`` (``BUILTIN_SPACES``)."""
    path = resources.files("search_space").joinpath(f"spaces/{name}.toml")
    if name not in BUILTIN_SPACES or not path.is_file():
        known = ", ".join(BUILTIN_SPACES)
        raise SpaceError(f"no built-in space named {name!r} (known: {known})")
    return path.read_text("utf-8")


def default_space_text() -> str:
    return builtin_space_text("default")


def space_source(space: str | Path | None = None) -> tuple[str, str]:
    """The text of ``space`` and how to name it in messages. ``space`` is a file, or the
    name of a built-in space (``default``, ``photos``, ``tiny``) when no file of that
    name exists; None is the default space."""
    if space is None:
        return default_space_text(), "default space"
    name = str(space)
    if name in BUILTIN_SPACES and not Path(space).exists():
        return builtin_space_text(name), f"built-in space {name!r}"
    try:
        text = Path(space).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        hint = (
            f" (built-in spaces: {', '.join(BUILTIN_SPACES)})" if isinstance(exc, OSError) else ""
        )
        raise SpaceError(f"cannot read space file {name!r}: {reason}{hint}") from None
    return text, f"space file {name!r}"


def load_space(path: str | Path | None = None) -> SearchSpace:
    """Load a space file (TOML) or a built-in space by name; None loads the default."""
    text, where = space_source(path)
    return SearchSpace.from_text(text, where)


_TOP = {"name", "widths", "resolutions", "se_ratio", "stem", "head", "stages"}
_STEM = {"channels", "kernel", "stride", "act"}
_HEAD = {"conv_channels", "conv_bn", "hidden_features", "act", "hidden_act", "dropout"}
_STAGE = {"channels", "stride", "depth", "kernel", "expansion", "se", "act"}


def _keys(owner: str, data: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpaceError(f"{owner} must be a table")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpaceError(
            f"{owner} has unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )
    missing = sorted(required - set(data))
    if missing:
        raise SpaceError(f"{owner}.{missing[0]} is required")
    return data


def _number(owner: str, value: Any, kind: type, rule: str, ok: Any) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind is int and not isinstance(value, int))
    ):
        raise SpaceError(f"{owner} must be {rule}, got {value!r}")
    if not ok(value):
        raise SpaceError(f"{owner} must be {rule}, got {value!r}")
    return kind(value)


def _width(owner: str, value: Any) -> int:
    """A head layer's width: an integer >= 0 (0: no such layer)."""
    return _number(owner, value, int, "an integer >= 0", lambda x: x >= 0)


def _choices(owner: str, value: Any, item: Any) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise SpaceError(f"{owner} must be a list of choices, got {value!r}")
    if not value:
        raise SpaceError(f"{owner} must not be an empty list")
    items = tuple(item(f"{owner}[{i}]", v) for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise SpaceError(f"{owner} has a repeated choice")
    return items


def _act(owner: str, value: Any) -> Activation:
    try:
        return Activation(value)
    except ValueError:
        allowed = ", ".join(a.value for a in Activation)
        raise SpaceError(f"{owner} must be one of {allowed}, got {value!r}") from None


def _space_from_dict(data: dict[str, Any]) -> SearchSpace:
    _keys("space", data, _TOP, {"stem", "stages"})
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise SpaceError(f"name must be a non-empty string, got {name!r}")
    widths = _choices(
        "widths",
        data.get("widths", [1.0]),
        lambda o, v: _number(o, v, float, "a number in (0, 4]", lambda x: 0 < x <= 4),
    )
    resolutions = _choices(
        "resolutions",
        data.get("resolutions", [224]),
        lambda o, v: _number(
            o,
            v,
            int,
            f"a positive multiple of {RESOLUTION_MULTIPLE}",
            lambda x: x > 0 and x % RESOLUTION_MULTIPLE == 0,
        ),
    )
    se_ratio = _number(
        "se_ratio", data.get("se_ratio", 0.25), float, "in (0, 1]", lambda x: 0 < x <= 1
    )

    st = _keys("stem", data["stem"], _STEM, {"channels"})
    stem = StemSpec(
        out_channels=_number(
            "stem.channels", st["channels"], int, "a positive integer", lambda x: x > 0
        ),
        kernel=_number(
            "stem.kernel",
            st.get("kernel", 3),
            int,
            "an odd positive integer",
            lambda x: x > 0 and x % 2,
        ),
        stride=_number("stem.stride", st.get("stride", 2), int, "1 or 2", lambda x: x in (1, 2)),
        act=_act("stem.act", st.get("act", "relu")),
    )

    hd = _keys("head", data.get("head", {}), _HEAD, set())
    act = _act("head.act", hd.get("act", "hswish"))
    head = HeadSpec(
        conv_channels=_width("head.conv_channels", hd.get("conv_channels", 0)),
        conv_bn=_bool("head.conv_bn", hd.get("conv_bn", True)),
        conv_act=act,
        hidden_features=_width("head.hidden_features", hd.get("hidden_features", 0)),
        hidden_act=_act("head.hidden_act", hd.get("hidden_act", act.value)),
        dropout=_number(
            "head.dropout", hd.get("dropout", 0.0), float, "in [0, 1)", lambda x: 0 <= x < 1
        ),
    )

    raw_stages = data["stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpaceError("stages must be a non-empty list of [[stages]] tables")
    stages = []
    for i, raw in enumerate(raw_stages):
        o = f"stages[{i}]"
        s = _keys(o, raw, _STAGE, _STAGE - {"se", "act"})
        stages.append(
            StageSpace(
                channels=_number(
                    f"{o}.channels", s["channels"], int, "a positive integer", lambda x: x > 0
                ),
                stride=_number(f"{o}.stride", s["stride"], int, "1 or 2", lambda x: x in (1, 2)),
                depth=_choices(
                    f"{o}.depth",
                    s["depth"],
                    lambda o2, v: _number(
                        o2, v, int, "an integer from 1 to 20", lambda x: 1 <= x <= 20
                    ),
                ),
                kernel=_choices(
                    f"{o}.kernel",
                    s["kernel"],
                    lambda o2, v: _number(
                        o2, v, int, "an odd integer from 1 to 11", lambda x: 1 <= x <= 11 and x % 2
                    ),
                ),
                expansion=_choices(
                    f"{o}.expansion",
                    s["expansion"],
                    lambda o2, v: _number(
                        o2, v, float, "a number from 1 to 12", lambda x: 1 <= x <= 12
                    ),
                ),
                se=_choices(f"{o}.se", s.get("se", [False]), _bool),
                act=_choices(f"{o}.act", s.get("act", ["relu"]), _act),
            )
        )
    space = SearchSpace(name, widths, resolutions, se_ratio, stem, head, tuple(stages))
    too_small = [r for r in resolutions if r < space.total_stride]
    if too_small:
        raise SpaceError(
            f"resolutions must be at least the network's total stride ({space.total_stride}), "
            f"got {too_small[0]}"
        )
    return space


def _bool(owner: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpaceError(f"{owner} must be true or false, got {value!r}")
    return value

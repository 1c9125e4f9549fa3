"""The search space: a declarative set of choices that sampling turns into an ArchSpec.

A space is a TOML file (``spaces/default.toml`` is the built-in one, written to be copied
and edited): a stem, stages with per-stage depth choices and per-block choices (kernel,
expansion, SE on/off, activation), a head, and sets of widths and resolutions.

Sampling is define-by-run on an Optuna trial: ``width``, ``resolution``, a depth per stage
(``s<i>.depth``) and one categorical per block (``s<i>.b<j>``, a label such as
'k5_e6_se_hswish' naming kernel, expansion, SE and activation). Every block up to a
stage's largest depth is suggested, used or not, so the parameter set is the same for
every trial (NSGA-II's crossover works on a fixed set), and one parameter per block keeps
a trial's storage writes few. ``spec_from_params`` is the one function that turns
parameters into a spec, so the same parameters always give the same spec.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from search_space._errors import NasctlError, SpaceError
from search_space._spec import (
    RESOLUTION_MULTIPLE,
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    Part,
    StemSpec,
    make_divisible,
)

__all__ = [
    "BlockChoice",
    "SearchSpace",
    "StageSpace",
    "builtin_space_text",
    "default_space_text",
    "load_space",
]


@dataclass(frozen=True)
class BlockChoice:
    """What the search picks for one block."""

    kernel: int
    expansion: float
    se: bool
    act: Activation

    @property
    def label(self) -> str:
        """The value of a block's parameter in a trial, e.g. 'k5_e6_se_hswish'."""
        return f"k{self.kernel}_e{self.expansion:g}{'_se' if self.se else ''}_{self.act.value}"


@dataclass(frozen=True)
class StageSpace:
    channels: int
    stride: int
    depth: tuple[int, ...]
    kernel: tuple[int, ...]
    expansion: tuple[float, ...]
    se: tuple[bool, ...]
    act: tuple[Activation, ...]

    @property
    def block_choices(self) -> list[BlockChoice]:
        return [
            BlockChoice(k, e, s, a)
            for k, e, s, a in itertools.product(self.kernel, self.expansion, self.se, self.act)
        ]

    @property
    def labels(self) -> dict[str, BlockChoice]:
        return {c.label: c for c in self.block_choices}


@dataclass(frozen=True)
class SearchSpace:
    name: str
    widths: tuple[float, ...]
    resolutions: tuple[int, ...]
    se_ratio: float
    stem: StemSpec  # channels at width 1.0
    head: HeadSpec  # channels at width 1.0
    stages: tuple[StageSpace, ...]

    @classmethod
    def from_text(cls, text: str, where: str = "space") -> SearchSpace:
        """Parse the text of a space file (what a study or a supernet file stores);
        ``where`` names it in error messages."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpaceError(f"{where} is not valid TOML: {exc}") from None
        try:
            return _space_from_dict(data)
        except SpaceError as exc:
            raise SpaceError(f"{where}: {exc}") from None
        except NasctlError as exc:  # a SpecError from a stem/head/block it describes
            raise SpaceError(f"{where}: {exc}") from None

    # --- size -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of distinct architectures (per number of classes)."""
        total = len(self.widths) * len(self.resolutions)
        for stage in self.stages:
            n = len(stage.block_choices)
            total *= sum(n**d for d in stage.depth)
        return total

    @property
    def total_stride(self) -> int:
        return self.stem.stride * math.prod(s.stride for s in self.stages)

    # --- parameters -> spec -----------------------------------------------------------

    def sample(self, trial: Any, num_classes: int) -> ArchSpec:
        """Suggest every parameter on an Optuna trial (define-by-run) and build the spec."""
        params: dict[str, Any] = {
            "width": trial.suggest_categorical("width", list(self.widths)),
            "resolution": trial.suggest_categorical("resolution", list(self.resolutions)),
        }
        for i, stage in enumerate(self.stages):
            params[f"s{i}.depth"] = trial.suggest_categorical(f"s{i}.depth", list(stage.depth))
            labels = list(stage.labels)
            for j in range(max(stage.depth)):
                params[f"s{i}.b{j}"] = trial.suggest_categorical(f"s{i}.b{j}", labels)
        return self.spec_from_params(params, num_classes)

    def random_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniformly random parameters (the same names ``sample`` suggests)."""

        def pick(choices: list[Any]) -> Any:
            return choices[int(rng.integers(len(choices)))]

        params: dict[str, Any] = {
            "width": pick(list(self.widths)),
            "resolution": pick(list(self.resolutions)),
        }
        for i, stage in enumerate(self.stages):
            params[f"s{i}.depth"] = pick(list(stage.depth))
            labels = list(stage.labels)
            for j in range(max(stage.depth)):
                params[f"s{i}.b{j}"] = pick(labels)
        return params

    def random_spec(self, seed: int, num_classes: int) -> ArchSpec:
        return self.spec_from_params(self.random_params(np.random.default_rng(seed)), num_classes)

    def spec_from_params(self, params: dict[str, Any], num_classes: int) -> ArchSpec:
        """The spec for a full set of parameters; width is applied here, once."""
        try:
            width = float(params["width"])
            stages = []
            for i, stage in enumerate(self.stages):
                depth = int(params[f"s{i}.depth"])
                if depth not in stage.depth:
                    raise SpaceError(f"s{i}.depth must be one of {list(stage.depth)}, got {depth}")
                labels = stage.labels
                choices = []
                for j in range(depth):
                    label = params[f"s{i}.b{j}"]
                    if label not in labels:
                        raise SpaceError(
                            f"s{i}.b{j} must be one of the stage's block choices "
                            f"({', '.join(labels)}), got {label!r}"
                        )
                    choices.append(labels[label])
                stages.append(choices)
            resolution = int(params["resolution"])
        except KeyError as exc:
            raise SpaceError(f"parameter {exc.args[0]!r} is missing") from None
        return self.make_spec(width, resolution, stages, num_classes)

    def params_of(self, spec: ArchSpec) -> dict[str, Any]:
        """The parameters that give ``spec``: the inverse of ``spec_from_params``.

        Only the blocks a stage uses are named (``s<i>.b<j>`` for j < depth). Where two
        widths or expansions give the same channel counts (make_divisible(16 * 0.75) is
        16), the first choice in the space's list that reproduces the spec is returned.
        A spec that is not a point of the space raises SpaceError naming the first field
        that no choice explains (``num_classes`` is not a choice of the space).
        """
        if spec.resolution not in self.resolutions:
            raise SpaceError(
                f"resolution must be one of {_listed(self.resolutions)} (the space's "
                f"resolutions), got {spec.resolution}"
            )
        for name in ("kernel", "stride", "act"):
            want, got = getattr(self.stem, name), getattr(spec.stem, name)
            if want != got:
                raise SpaceError(f"stem.{name} must be {_shown(want)} in this space, got {got}")
        widths = [
            w
            for w in self.widths
            if make_divisible(self.stem.out_channels * w) == spec.stem.out_channels
        ]
        if not widths:
            stems = sorted({make_divisible(self.stem.out_channels * w) for w in self.widths})
            raise SpaceError(
                f"stem.out_channels must be one of {_listed(stems)} (the stem at widths "
                f"{_listed(self.widths)}), got {spec.stem.out_channels}"
            )
        furthest = _Mismatch(-1, "")
        for width in widths:
            try:
                params = self._params_at(spec, width)
            except _Mismatch as exc:
                furthest = max(furthest, exc, key=_Mismatch.rank)
                continue
            if self.spec_from_params(params, spec.num_classes) != spec:  # pragma: no cover
                raise SpaceError("spec is not a point of the space")
            return params
        raise SpaceError(furthest.message)

    def _params_at(self, spec: ArchSpec, width: float) -> dict[str, Any]:
        """``params_of`` at one width; raises _Mismatch at the furthest block it explains.

        Stage boundaries are not written in a spec, so each stage tries its depths
        (longest first) and backtracks when the rest does not fit."""
        blocks = spec.blocks

        def ch(c: int) -> int:
            return make_divisible(c * width)

        def walk(s: int, pos: int, c_in: int) -> list[list[BlockChoice]]:
            if s == len(self.stages):
                if pos < len(blocks):
                    raise _Mismatch(
                        pos,
                        f"blocks has {len(blocks)} blocks, more than the space's stages hold "
                        f"after blocks[{pos - 1}]",
                    )
                return []
            stage, c_out = self.stages[s], ch(self.stages[s].channels)
            matched: list[BlockChoice] = []
            furthest = _Mismatch(
                pos, f"blocks ends after {len(blocks)} blocks, before stage {s} of the space"
            )
            for j in range(max(stage.depth)):
                if pos + j >= len(blocks):
                    break
                try:
                    matched.append(
                        self._match_block(
                            stage, s, j, pos + j, blocks[pos + j], c_in if j == 0 else c_out, c_out
                        )
                    )
                except _Mismatch as exc:
                    furthest = exc
                    break
            for depth in sorted(stage.depth, reverse=True):
                if depth <= len(matched):
                    try:
                        return [matched[:depth], *walk(s + 1, pos + depth, c_out)]
                    except _Mismatch as exc:
                        furthest = max(furthest, exc, key=_Mismatch.rank)
            if len(matched) < min(stage.depth) and furthest.position < pos + len(matched):
                furthest = _Mismatch(
                    pos + len(matched),
                    f"stage {s} must have one of {_listed(stage.depth)} blocks, got "
                    f"{len(matched)} from blocks[{pos}]",
                )
            raise furthest

        stages = walk(0, 0, spec.stem.out_channels)
        expected = self.make_spec(width, spec.resolution, stages, spec.num_classes).head
        for name in ("conv_channels", "conv_bn", "conv_act", "hidden_features", "hidden_act"):
            want, got = getattr(expected, name), getattr(spec.head, name)
            if want != got:
                raise _Mismatch(
                    len(blocks),
                    f"head.{name} must be {_shown(want)} at width {width:g}, got {_shown(got)}",
                )
        if expected.dropout != spec.head.dropout:
            raise _Mismatch(
                len(blocks),
                f"head.dropout must be {expected.dropout:g} in this space, got "
                f"{spec.head.dropout:g}",
            )
        params: dict[str, Any] = {"width": width, "resolution": spec.resolution}
        for s, choices in enumerate(stages):
            params[f"s{s}.depth"] = len(choices)
            for j, choice in enumerate(choices):
                params[f"s{s}.b{j}"] = choice.label
        return params

    def _match_block(
        self,
        stage: StageSpace,
        s: int,
        j: int,
        position: int,
        block: BlockSpec,
        c_in: int,
        c_out: int,
    ) -> BlockChoice:
        """The choice of stage ``s`` that makes ``block`` at position ``j`` of the stage."""
        where = f"blocks[{position}]"
        at = f"(stage {s}, block {j})"
        stride = stage.stride if j == 0 else 1
        structural = [
            ("kind", BlockKind.INVERTED_RESIDUAL, block.kind),
            ("in_channels", c_in, block.in_channels),
            ("out_channels", c_out, block.out_channels),
            ("stride", stride, block.stride),
        ]
        for name, want, got in structural:
            if want != got:
                raise _Mismatch(
                    position, f"{where}.{name} must be {_shown(want)} {at}, got {_shown(got)}"
                )
        if block.kernel not in stage.kernel:
            raise _Mismatch(
                position,
                f"{where}.kernel must be one of {_listed(stage.kernel)} {at}, got {block.kernel}",
                choice=True,
            )
        if block.act not in stage.act:
            raise _Mismatch(
                position,
                f"{where}.act must be one of {_listed(stage.act)} {at}, got {_shown(block.act)}",
                choice=True,
            )
        for expansion in stage.expansion:
            for se in stage.se:
                choice = BlockChoice(block.kernel, expansion, se, block.act)
                if self._block(stage, choice, c_in, c_out, j == 0) == block:
                    return choice
        mids = {
            self._block(
                stage, BlockChoice(block.kernel, e, False, block.act), c_in, c_out, j == 0
            ).mid_channels: e
            for e in stage.expansion
        }
        if block.mid_channels not in mids:
            raise _Mismatch(
                position,
                f"{where}.mid_channels must be one of {_listed(sorted(mids))} (stage {s}, "
                f"block {j}: expansions {_listed(stage.expansion)} of {c_in} channels), got "
                f"{block.mid_channels}",
                choice=True,
            )
        squeezes = sorted(
            {make_divisible(block.mid_channels * self.se_ratio) if se else 0 for se in stage.se}
        )
        raise _Mismatch(
            position,
            f"{where}.se_channels must be one of {_listed(squeezes)} {at}, got {block.se_channels}",
            choice=True,
        )

    def make_spec(
        self,
        width: float,
        resolution: int,
        stages: list[list[BlockChoice]],
        num_classes: int,
    ) -> ArchSpec:
        def ch(c: int) -> int:
            return make_divisible(c * width)

        stem = StemSpec(
            ch(self.stem.out_channels), self.stem.kernel, self.stem.stride, self.stem.act
        )
        blocks, c_in = [], stem.out_channels
        for stage, choices in zip(self.stages, stages, strict=True):
            for j, choice in enumerate(choices):
                blocks.append(self._block(stage, choice, c_in, ch(stage.channels), j == 0))
                c_in = ch(stage.channels)
        # Settings of an absent conv or hidden layer take HeadSpec's defaults, so that
        # a spec equals its own arch string (which cannot carry them).
        default = HeadSpec()
        conv, hidden = self.head.conv_channels, self.head.hidden_features
        head = HeadSpec(
            conv_channels=ch(conv) if conv else 0,
            conv_bn=self.head.conv_bn if conv else default.conv_bn,
            conv_act=self.head.conv_act if conv else default.conv_act,
            hidden_features=ch(hidden) if hidden else 0,
            hidden_act=self.head.hidden_act if hidden else default.hidden_act,
            dropout=self.head.dropout,
        )
        return ArchSpec(stem, tuple(blocks), head, resolution, num_classes)

    def _block(
        self, stage: StageSpace, choice: BlockChoice, c_in: int, c_out: int, first: bool
    ) -> BlockSpec:
        mid = c_in if choice.expansion == 1 else make_divisible(c_in * choice.expansion)
        return BlockSpec(
            kind=BlockKind.INVERTED_RESIDUAL,
            in_channels=c_in,
            out_channels=c_out,
            kernel=choice.kernel,
            stride=stage.stride if first else 1,
            mid_channels=mid,
            se_channels=make_divisible(mid * self.se_ratio) if choice.se else 0,
            act=choice.act,
        )

    # --- what a latency table must cover --------------------------------------------------

    def distinct_parts(self, num_classes: int) -> list[Part]:
        """Every distinct stem, block and head (with its input size and channels) that an
        architecture of this space can contain, across all widths and resolutions.

        Blocks are named "block": their cost does not depend on their position."""
        seen: dict[Part, None] = {}
        for width, resolution in itertools.product(self.widths, self.resolutions):
            # A network of minimal depth gives the stem, the head and each stage's input.
            shortest = [[stage.block_choices[0]] for stage in self.stages]
            base = self.make_spec(width, resolution, shortest, num_classes).parts()
            seen.update(dict.fromkeys([base[0], base[-1]]))
            for stage, first in zip(self.stages, base[1:-1], strict=True):
                c_out = make_divisible(stage.channels * width)
                for choice in stage.block_choices:
                    block = self._block(stage, choice, first.in_channels, c_out, True)
                    seen[Part("block", first.in_size, first.out_size, first.in_channels, block)] = (
                        None
                    )
                    if max(stage.depth) > 1:
                        block = self._block(stage, choice, c_out, c_out, False)
                        seen[Part("block", first.out_size, first.out_size, c_out, block)] = None
        return list(seen)

    # --- display ---------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """One row per stage, for tables."""
        return [
            {
                "stage": i,
                "channels": s.channels,
                "stride": s.stride,
                "depth": list(s.depth),
                "kernel": list(s.kernel),
                "expansion": list(s.expansion),
                "se": list(s.se),
                "act": [a.value for a in s.act],
                "choices_per_block": len(s.block_choices),
            }
            for i, s in enumerate(self.stages)
        ]


class _Mismatch(Exception):
    """Why a spec is not a point of the space, and how far into its blocks that shows.

    ``choice``: the block fits where it stands (channels, stride) but no choice of the
    stage makes it; that says more than a block that fits no stage there."""

    def __init__(self, position: int, message: str, choice: bool = False) -> None:
        super().__init__(message)
        self.position = position
        self.message = message
        self.choice = choice

    def rank(self) -> tuple[int, bool]:
        return self.position, self.choice


def _shown(value: Any) -> str:
    if isinstance(value, Activation | BlockKind):
        return repr(value.value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _listed(values: Any) -> str:
    return ", ".join(_shown(v) for v in values)


# --- loading ------------------------------------------------------------------------------


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
        conv_channels=_number(
            "head.conv_channels",
            hd.get("conv_channels", 0),
            int,
            "an integer >= 0",
            lambda x: x >= 0,
        ),
        conv_bn=_bool("head.conv_bn", hd.get("conv_bn", True)),
        conv_act=act,
        hidden_features=_number(
            "head.hidden_features",
            hd.get("hidden_features", 0),
            int,
            "an integer >= 0",
            lambda x: x >= 0,
        ),
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

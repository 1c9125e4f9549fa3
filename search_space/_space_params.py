"""The inverse of sampling: the parameters of a space that give a spec, or a message
naming the first field of the spec that no choice of the space explains."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_space._errors import SpaceError
from search_space._space_choices import BlockChoice, StageSpace
from search_space._spec import Activation, ArchSpec, BlockKind, BlockSpec, make_divisible

if TYPE_CHECKING:
    from search_space._space import SearchSpace

__all__ = ["params_of"]


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


def params_of(space: SearchSpace, spec: ArchSpec) -> dict[str, Any]:
    """The parameters that give ``spec``: the inverse of ``spec_from_params``.

    Only the blocks a stage uses are named (``s<i>.b<j>`` for j < depth). Where two
    widths or expansions give the same channel counts (make_divisible(16 * 0.75) is
    16), the first choice in the space's list that reproduces the spec is returned.
    A spec that is not a point of the space raises SpaceError naming the first field
    that no choice explains (``num_classes`` is not a choice of the space).
    """
    if spec.resolution not in space.resolutions:
        raise SpaceError(
            f"resolution must be one of {_listed(space.resolutions)} (the space's "
            f"resolutions), got {spec.resolution}"
        )
    for name in ("kernel", "stride", "act"):
        want, got = getattr(space.stem, name), getattr(spec.stem, name)
        if want != got:
            raise SpaceError(f"stem.{name} must be {_shown(want)} in this space, got {got}")
    widths = [
        w
        for w in space.widths
        if make_divisible(space.stem.out_channels * w) == spec.stem.out_channels
    ]
    if not widths:
        stems = sorted({make_divisible(space.stem.out_channels * w) for w in space.widths})
        raise SpaceError(
            f"stem.out_channels must be one of {_listed(stems)} (the stem at widths "
            f"{_listed(space.widths)}), got {spec.stem.out_channels}"
        )
    furthest = _Mismatch(-1, "")
    for width in widths:
        try:
            params = _params_at(space, spec, width)
        except _Mismatch as exc:
            furthest = max(furthest, exc, key=_Mismatch.rank)
            continue
        if space.spec_from_params(params, spec.num_classes) != spec:  # pragma: no cover
            raise SpaceError("spec is not a point of the space")
        return params
    raise SpaceError(furthest.message)


def _params_at(space: SearchSpace, spec: ArchSpec, width: float) -> dict[str, Any]:
    """``params_of`` at one width; raises _Mismatch at the furthest block it explains.

    Stage boundaries are not written in a spec, so each stage tries its depths
    (longest first) and backtracks when the rest does not fit."""
    blocks = spec.blocks

    def ch(c: int) -> int:
        return make_divisible(c * width)

    def walk(s: int, pos: int, c_in: int) -> list[list[BlockChoice]]:
        if s == len(space.stages):
            if pos < len(blocks):
                raise _Mismatch(
                    pos,
                    f"blocks has {len(blocks)} blocks, more than the space's stages hold "
                    f"after blocks[{pos - 1}]",
                )
            return []
        stage, c_out = space.stages[s], ch(space.stages[s].channels)
        matched: list[BlockChoice] = []
        furthest = _Mismatch(
            pos, f"blocks ends after {len(blocks)} blocks, before stage {s} of the space"
        )
        for j in range(max(stage.depth)):
            if pos + j >= len(blocks):
                break
            try:
                matched.append(
                    _match_block(
                        space,
                        stage,
                        s,
                        j,
                        pos + j,
                        blocks[pos + j],
                        c_in if j == 0 else c_out,
                        c_out,
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
    expected = space.make_spec(width, spec.resolution, stages, spec.num_classes).head
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
            f"head.dropout must be {expected.dropout:g} in this space, got {spec.head.dropout:g}",
        )
    params: dict[str, Any] = {"width": width, "resolution": spec.resolution}
    for s, choices in enumerate(stages):
        params[f"s{s}.depth"] = len(choices)
        for j, choice in enumerate(choices):
            params[f"s{s}.b{j}"] = choice.label
    return params


def _match_block(
    space: SearchSpace,
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
            if space._block(stage, choice, c_in, c_out, j == 0) == block:
                return choice
    mids = {
        space._block(
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
        {make_divisible(block.mid_channels * space.se_ratio) if se else 0 for se in stage.se}
    )
    raise _Mismatch(
        position,
        f"{where}.se_channels must be one of {_listed(squeezes)} {at}, got {block.se_channels}",
        choice=True,
    )

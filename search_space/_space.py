"""The search space: a declarative set of choices that sampling turns into an ArchSpec.

A space is read from a TOML file (``_space_file``); this module holds the space itself.

Sampling is define-by-run on an Optuna trial: ``width``, ``resolution``, a depth per stage
(``s<i>.depth``) and one categorical per block (``s<i>.b<j>``, a label such as
'k5_e6_se_hswish' naming kernel, expansion, SE and activation). Every block up to a
stage's largest depth is suggested, used or not, so the parameter set is the same for
every trial (NSGA-II's crossover works on a fixed set), and one parameter per block keeps
a trial's storage writes few. ``spec_from_params`` is the one function that turns
parameters into a spec, so the same parameters always give the same spec; ``params_of``
(``_space_params``) is its inverse.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_space import _space_params
from search_space._errors import NasctlError, SpaceError
from search_space._space_choices import BlockChoice, StageSpace
from search_space._spec import (
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    Part,
    StemSpec,
    make_divisible,
)

__all__ = ["SearchSpace"]


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
        # The TOML checks build a SearchSpace, so that module imports this one.
        from search_space._space_file import _space_from_dict

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

    def _choose_params(self, choose: Callable[[str, list[Any]], Any]) -> dict[str, Any]:
        """Every parameter, each ``choose(name, choices)``, in a fixed order: width,
        resolution, then per stage its depth and one block label per possible block."""
        params: dict[str, Any] = {
            "width": choose("width", list(self.widths)),
            "resolution": choose("resolution", list(self.resolutions)),
        }
        for i, stage in enumerate(self.stages):
            params[f"s{i}.depth"] = choose(f"s{i}.depth", list(stage.depth))
            labels = list(stage.labels)
            for j in range(max(stage.depth)):
                params[f"s{i}.b{j}"] = choose(f"s{i}.b{j}", labels)
        return params

    def sample(self, trial: Any, num_classes: int) -> ArchSpec:
        """Suggest every parameter on an Optuna trial (define-by-run) and build the spec."""
        return self.spec_from_params(self._choose_params(trial.suggest_categorical), num_classes)

    def random_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniformly random parameters (the same names ``sample`` suggests)."""
        return self._choose_params(lambda _name, choices: choices[int(rng.integers(len(choices)))])

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
        return _space_params.params_of(self, spec)

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

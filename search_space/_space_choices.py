"""What the search picks for one block, and the choices one stage of a space offers."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from search_space._spec import Activation

__all__ = ["BlockChoice", "StageSpace"]


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

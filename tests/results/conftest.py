from __future__ import annotations

from pathlib import Path

import pytest

from search_space import builtin_space_text

#: A space small enough to train in a second: two stages, one width, one resolution.
TINY_SPACE = builtin_space_text("tiny")


#: A space with exactly two architectures, to see duplicates reused.
TWO_ARCH_SPACE = (
    TINY_SPACE.replace("depth = [1, 2]", "depth = [1]")
    .replace("kernel = [3, 5]", "kernel = [3]")
    .replace("expansion = [1, 3]", "expansion = [1]")
    .replace("se = [false, true]", "se = [false]")
)


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def two_arch_space(tmp_path: Path) -> Path:
    path = tmp_path / "two.toml"
    path.write_text(TWO_ARCH_SPACE)
    return path

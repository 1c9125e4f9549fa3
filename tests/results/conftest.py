from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


def write_tiny_supernet(path: Path, space_text: str = TINY_SPACE, train: bool = True) -> Path:
    """A real supernet over ``space_text`` on digits (split seed 0), trained for two
    steps (or not at all): enough to score candidates with."""
    from estimators import (
        SupernetRecipe,
        fit_supernet,
        load_data,
        new_supernet_state,
        save_supernet,
    )
    from search_space import SearchSpace

    recipe = SupernetRecipe.of(epochs=1, batch_size=32, train_images=64, bn_images=0,
                               warmup_epochs=0.5)  # fmt: skip
    resolutions = SearchSpace.from_text(space_text).resolutions
    data = {r: load_data("digits", r) for r in resolutions}
    state = new_supernet_state(space_text, data[max(resolutions)], recipe, data_seed=0)
    if train:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # two cores shared with other work: one thread is faster
        try:
            fit_supernet(state, data)
        finally:
            torch.set_num_threads(threads)
    return save_supernet(state, path)


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_supernet(tmp_path_factory.mktemp("supernet") / "tiny.pt")

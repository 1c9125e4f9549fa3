"""The lazy front doors: names read from the ``if TYPE_CHECKING:`` block, loaded on use."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import pytest

from search_space._lazy import type_checking_imports

SOURCE = textwrap.dedent(
    """
    from typing import TYPE_CHECKING
    import typing

    from pkg._light import light

    if TYPE_CHECKING:
        from pkg._heavy import Heavy, heavy
        from ._relative import near
        from .sub._deep import deep as renamed
        import pkg._ignored

    if typing.TYPE_CHECKING:
        from pkg._other import other

    if False:
        from pkg._never import never
    """
)


def test_the_table_holds_each_type_checking_import_and_nothing_else() -> None:
    assert type_checking_imports("pkg", SOURCE) == {
        "Heavy": "pkg._heavy",
        "heavy": "pkg._heavy",
        "near": "pkg._relative",
        "renamed": "pkg.sub._deep",
        "other": "pkg._other",
    }


@pytest.mark.parametrize("package", ["search_space", "estimators", "results"])
def test_every_lazy_name_is_public_and_none_is_also_eager(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    lazy = type_checking_imports(package, Path(module.__file__).read_text(encoding="utf-8"))
    assert lazy, f"{package} has no lazy names"
    assert sorted(set(lazy) - set(module.__all__)) == []
    assert sorted(name for name in lazy if name in vars(module)) == []


@pytest.mark.parametrize("package", ["search_space", "estimators", "results"])
def test_an_unknown_name_is_an_attribute_error_naming_the_package(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        module.nope  # noqa: B018
    assert not hasattr(module, "nope")

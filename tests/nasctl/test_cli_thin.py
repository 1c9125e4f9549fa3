"""The CLI stays thin: it reaches the packages through their public names and declares
its options with the packages' own enums instead of copies."""

from __future__ import annotations

import ast
import enum
from pathlib import Path

import pytest

import estimators
import results
import search_space

NASCTL = sorted((Path(__file__).parents[2] / "nasctl").glob("*.py"))
PACKAGES = ("estimators", "results", "search_space")


@pytest.mark.parametrize("path", NASCTL, ids=lambda p: p.name)
def test_no_private_module_of_another_package_is_imported(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [
        f"line {node.lineno}: from {node.module} import ..."
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in PACKAGES
        and any(part.startswith("_") for part in node.module.split(".")[1:])
    ]
    assert not private, f"{path.name} imports private modules: {private}"


def _library_enums() -> dict[frozenset[str], str]:
    found = {}
    for package in (estimators, results, search_space):
        for name in package.__all__:
            value = getattr(package, name)
            if isinstance(value, type) and issubclass(value, enum.Enum):
                found[frozenset(str(m.value) for m in value)] = f"{package.__name__}.{name}"
    return found


def test_the_cli_redefines_no_library_enum() -> None:
    library = _library_enums()
    assert "estimators.Backend" in library.values() and "estimators.Preset" in library.values()
    copies = []
    for path in NASCTL:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id.endswith("Enum") for b in node.bases
            ):
                values = frozenset(
                    stmt.value.value
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                )
                if values in library:
                    copies.append(f"{path.name}: {node.name} copies {library[values]}")
    assert copies == []

"""Lazy public names for a package's front door (PEP 562 module ``__getattr__``).

A package imports its light names as usual and writes its heavy ones (those whose module
imports torch, optuna or pandas, which take seconds) as imports under
``if TYPE_CHECKING:``, so that mypy and editors see them typed while run time skips them.
``lazy_exports`` reads that block from the package's source and returns the module
``__getattr__`` that imports a name's module on first use: each lazy name is written once,
as an import, and once in ``__all__``, like an eager one.

Usage, last in the package's ``__init__.py``::

    __getattr__ = lazy_exports(__name__)
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "type_checking_imports"]


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def type_checking_imports(package: str, source: str) -> dict[str, str]:
    """Name -> module of each ``from module import name`` in the top-level
    ``if TYPE_CHECKING:`` blocks of a package's source (relative modules resolved)."""
    table: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.ImportFrom):
                continue
            module = importlib.util.resolve_name(
                "." * statement.level + (statement.module or ""), package
            )
            for alias in statement.names:
                table[alias.asname or alias.name] = module
    return table


def lazy_exports(package: str) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` that loads its ``TYPE_CHECKING`` imports on
    first use. The source is read on the first miss, so importing the package costs nothing."""

    @cache
    def table() -> dict[str, str]:
        file = sys.modules[package].__file__
        if file is None:
            raise ImportError(f"package {package!r} has no source file to read its lazy names")
        return type_checking_imports(package, Path(file).read_text(encoding="utf-8"))

    def __getattr__(name: str) -> Any:
        module = table().get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__

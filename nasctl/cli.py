"""Entry point: imports every command module so they register on the app."""

from __future__ import annotations

from nasctl import (  # noqa: F401  (registration)
    _cmd_arch,
    _cmd_compare,
    _cmd_export,
    _cmd_latency,
    _cmd_results,
    _cmd_search,
    _cmd_supernet,
    _cmd_table,
    _cmd_train,
    _cmd_visualize,
)
from nasctl._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()

"""The progress bar a training command draws: epoch, steps done, its stats, time left."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nasctl._app import console

__all__ = ["training_bar"]


def training_bar() -> Progress:
    """A bar on stdout whose task carries a ``stats`` field (loss, images per second)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )

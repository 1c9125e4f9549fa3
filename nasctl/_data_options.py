"""The ``--data-mode`` option shared by train, eval, search, compare and supernet train,
and the progress bar shown while data downloads or decodes (torch-free at import)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from estimators import DataMode
from nasctl._app import err_console

__all__ = ["DataMode", "DataModeOption", "load_progress"]

DataModeOption = Annotated[
    DataMode,
    typer.Option(
        "--data-mode",
        help="Where decoded images live: memory; stream (a uint8 file on disk, read a "
        "batch at a time: data larger than memory); auto (stream when the decoded images "
        "would take more than half the available memory).",
    ),
]


@contextmanager
def load_progress() -> Iterator[Callable[[str, int, int | None], None]]:
    """A transient bar on stderr; yields the ``on_progress`` that ``load_data`` takes."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:

        def on_progress(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                label = "downloading CIFAR-10 (bytes)" if stage == "download" else "decoding images"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield on_progress

"""The ``--data`` and ``--data-mode`` options shared by train, eval, search, compare and
supernet, and the loading of the data with a progress bar while it downloads or decodes
(torch-free at import)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import TaskID, TimeRemainingColumn

from estimators import DataMode
from nasctl._output import console, err_console
from nasctl._progress import progress_bar

if TYPE_CHECKING:
    from estimators import ImageData

__all__ = ["DATA_HELP", "DataMode", "DataModeOption", "DataOption", "load_images", "load_progress"]

DATA_HELP = (
    "'digits' (scikit-learn's embedded 8x8 handwritten digits), 'cifar10' (downloaded "
    "once), a CIFAR-10 python batches dir, or an ImageFolder dir."
)
DataOption = Annotated[str, typer.Option(help=DATA_HELP)]

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
    with progress_bar(
        TimeRemainingColumn(), transient=True, description="{task.description}"
    ) as bar:

        def on_progress(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                label = "downloading CIFAR-10 (bytes)" if stage == "download" else "decoding images"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield on_progress


def load_images(
    data: str, resolution: int, seed: int, mode: DataMode | str = DataMode.AUTO
) -> ImageData:
    """load_data with a progress bar for the download and for decoding image files; what
    was loaded is printed, and unreadable images skipped are a warning."""
    from estimators import load_data

    with load_progress() as on_progress:
        loaded = load_data(data, resolution, seed=seed, on_progress=on_progress, mode=mode)
    console.print(loaded.describe(), highlight=False)
    if loaded.skipped:
        shown = ", ".join(loaded.skipped[:3]) + (", ..." if len(loaded.skipped) > 3 else "")
        err_console.print(
            f"[yellow]warning:[/yellow] skipped {len(loaded.skipped)} unreadable image(s): {shown}",
            highlight=False,
            soft_wrap=True,
        )
    return loaded

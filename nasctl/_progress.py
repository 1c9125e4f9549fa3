"""The progress bars the commands draw: loading data, measuring parts or architectures, and
training (epoch, steps done, stats, time left), with what Ctrl-C does to a training run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nasctl._output import console, err_console

__all__ = ["TrainingBar", "progress_bar", "training"]


def progress_bar(
    *columns: ProgressColumn,
    out: Console = err_console,
    transient: bool = False,
    description: str = "[bold]{task.description}",
) -> Progress:
    """The description, a bar and `done/total`, then ``columns``."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        console=out,
        transient=transient,
    )


class _Position(Protocol):
    """A training state: where it stands (epoch and batch, both counted from 0)."""

    epoch: int
    batch: int


class _Step(Protocol):
    """A progress report: the step just done (epoch and batch counted from 0) of how many."""

    @property
    def epoch(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch(self) -> int: ...
    @property
    def batches(self) -> int: ...


class TrainingBar:
    """The bar of one training run: a line per finished epoch, the bar moved per step."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self.bar, self.task = bar, task

    def line(self, text: str) -> None:
        self.bar.console.print(text, highlight=False)

    def step(self, p: _Step, what: str, stats: str) -> None:
        """Steps done of all; ``what`` is the bar's description, ``stats`` beside it."""
        done, total = p.epoch * p.batches + p.batch, p.epochs * p.batches
        self.bar.update(self.task, completed=done, total=total, description=what, stats=stats)


@contextmanager
def training(
    state: _Position,
    save: Callable[[], object],
    saved_to: Path,
    again: str,
    epochs: int,
    batches: int | None = None,
) -> Iterator[TrainingBar]:
    """A bar on stdout while the body trains ``state`` (``batches`` per epoch, when known
    before training starts), then ``save``. Ctrl-C saves too, says where the run stopped
    and how to continue (``again``) on one line, and exits 130."""
    bar = progress_bar(
        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(), out=console
    )
    try:
        with bar:
            task = bar.add_task(
                f"epoch {state.epoch + 1}/{epochs}",
                total=None if batches is None else epochs * batches,
                completed=0 if batches is None else state.epoch * batches + state.batch,
                stats="",
            )
            yield TrainingBar(bar, task)
    except KeyboardInterrupt:
        save()
        err_console.print(
            f"[yellow]interrupted[/yellow] at epoch {state.epoch + 1}, batch {state.batch}: "
            f"saved {saved_to}; {again}",
            highlight=False,
            soft_wrap=True,  # one line in a log too, however long the path
        )
        raise typer.Exit(130) from None
    save()

"""The typer application, the error boundary, and helpers shared by the commands.

Library code raises ``NasctlError``; only here does it become one red line on stderr
and exit code 2.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.metadata
import inspect
import json
import os
import re
import shlex
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's bundled click
from typer.core import TyperGroup, TyperOption

from search_space import (
    ArchSpec,
    ClassicSpec,
    NasctlError,
    NasctlWarning,
    SpecError,
    baseline_names,
    check_finite,
    check_threads,
    classic_names,
    get_baseline,
    get_classic,
    load_spec,
    looks_like_arch,
    parse_arch,
)

__all__ = [
    "OutputFormat",
    "app",
    "check_output",
    "command_group",
    "console",
    "emit",
    "err_console",
    "fail",
    "guarded",
    "invoked",
    "renamed",
    "resolve_arch",
    "resolve_model",
]


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """The help's type column without ``<bool>`` beside every flag (--help, --resume,
    --no-baselines): a flag takes no value, so it has no type to show."""
    return None if self.is_flag else _value_type(self, ctx)


_value_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


class _OneLineGroup(TyperGroup):
    """Click's usage errors (a word where a number goes, an unknown option) as one red
    line and exit 2 too, like every other refusal, instead of a boxed usage message."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_as_lines():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_as_lines():
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_as_lines() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:  # a bare `nasctl lut`: click prints the help
        raise
    except UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        raise fail(f"{where}{exc.format_message()} (see --help)") from None


app = typer.Typer(
    cls=_OneLineGroup,
    name="nasctl",
    help="Hardware-aware neural architecture search for MobileNet-style image classifiers.\n\n"
    "Example: `nasctl search --data digits --trials 12`, then `nasctl compare` and "
    "`nasctl export --compare-best -f onnx -o ship/` (each command's --help has its own).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help text is markdown: write NAME, not <name>
)
# Tables are wide: when output is piped, do not wrap them at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _print_version(value: bool) -> None:
    if value:
        print(f"nasctl {importlib.metadata.version('nasctl')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Hardware-aware neural architecture search for MobileNet-style image classifiers."""


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def command_group(name: str, help_text: str) -> typer.Typer:
    """``nasctl NAME ...``: a group of subcommands that prints its help when given none."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def invoked() -> str:
    """The command line as typed (quoted for a shell), for the reports a command writes."""
    return "nasctl " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def fail(message: str) -> typer.Exit:
    """Print one red line on stderr and return the exit to raise (code 2)."""
    line = " ".join(message.split())  # one line, even when a library's message has several
    err_console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def guarded(fn: F) -> F:
    """Check every number the command was given (``_check_numbers``), then turn
    NasctlError into one line and exit 2, naming the flag where the library named the
    parameter (``as_flag``)."""
    options = {
        name
        for name, p in inspect.signature(fn).parameters.items()
        if "Argument(" not in str(p.annotation)
    }

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_numbers(kwargs)
            with _warnings_as_lines():
                return fn(*args, **kwargs)
        except NasctlError as exc:
            raise fail(as_flag(str(exc), options)) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


#: A library message that opens with the parameter it refuses: ``recipe.lr must be > 0``,
#: ``eta only applies to ...``.
_PARAMETER = re.compile(r"^(?:recipe\.)?([a-z][a-z0-9_]*)(?= (?:must|only|is only) )")


def as_flag(message: str, options: set[str]) -> str:
    """``message`` with its leading parameter name written as the command's flag
    (``recipe.batch_size must be ...`` -> ``--batch-size must be ...``) when the command
    has an option of that name; other messages unchanged."""
    found = _PARAMETER.match(message)
    if found is None or found.group(1) not in options:
        return message
    return "--" + found.group(1).replace("_", "-") + message[found.end() :]


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print every NasctlWarning (a repaired journal, ...) as one yellow line on stderr;
    other warnings go where they went."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
        if not issubclass(category, NasctlWarning):
            shown(message, category, *args, **kw)
            return
        line = " ".join(str(message).split())
        err_console.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", NasctlWarning)
        warnings.showwarning = show
        yield


#: The largest integer any option takes (a C int: seeds, counts, sizes).
MAX_OPTION_INT = 2**31 - 1


def _check_numbers(options: dict[str, Any]) -> None:
    """Every number given to a command, before it starts: thread counts from 1 to 4 per
    core (ONNX Runtime segfaults at 100,000), floats finite and not negative (NaN passes
    every ``x <= 0`` test), integers from 0 to MAX_OPTION_INT. No option of nasctl means
    anything below zero; each command still checks its own lower bound (``--trials 0``)."""
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if name == "threads" or name.endswith("_threads"):
                check_threads(v, flag)
            elif isinstance(v, float):
                check_finite(v, flag)
            elif not 0 <= v <= MAX_OPTION_INT:
                raise NasctlError(f"{flag} must be an integer from 0 to {MAX_OPTION_INT}, got {v}")


def check_output(path: Path, flag: str, *, directory: bool) -> None:
    """Refuse an output path that cannot be written, before any work starts: a file
    where a directory goes (or the reverse), a parent that is a file, a place where no
    file can be created (/proc, a read-only mount, no permission). A file is created
    and removed in the nearest existing folder to find out, so that nothing is left."""
    shown = repr(str(path))
    if directory and path.exists() and not path.is_dir():
        raise NasctlError(f"{flag} {shown} is a file, not a directory")
    if not directory and path.is_dir():
        raise NasctlError(f"{flag} {shown} is a directory, not a file")
    folder = path if directory else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NasctlError(f"{flag} {shown} cannot be written: {str(folder)!r} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nasctl-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise NasctlError(
            f"{flag} {shown} cannot be written: no file can be created in {str(folder)!r} "
            f"({reason})"
        ) from None
    if not directory and path.exists() and not os.access(path, os.W_OK):
        raise NasctlError(f"{flag} {shown} cannot be written: permission denied")


def resolve_arch(
    text: str, width: float = 1.0, resolution: int | None = None, num_classes: int | None = None
) -> ArchSpec:
    """ARCH on the command line: a baseline name, an arch string or a spec .json file.

    ``width`` applies to baseline names only; ``resolution`` and ``num_classes`` override.
    """
    if text in baseline_names():
        spec = get_baseline(text, width, resolution or 224, num_classes or 1000)
    elif looks_like_arch(text):
        spec = parse_arch(text)
    elif text.endswith(".json") or Path(text).exists():
        spec = load_spec(text)
    elif text in classic_names():
        raise SpecError(
            f"{text} is a classic reference network, not a MobileNet-style architecture; "
            "this command takes a baseline name, an arch string or a spec .json file"
        )
    else:
        raise SpecError(
            f"ARCH {text!r} is not a baseline ({', '.join(baseline_names())}), an arch string "
            "(r<res>_n<classes>,stem_...,...,head_...) or a spec .json file"
        )
    changes: dict[str, int] = {}
    if resolution is not None and resolution != spec.resolution:
        changes["resolution"] = resolution
    if num_classes is not None and num_classes != spec.num_classes:
        changes["num_classes"] = num_classes
    return spec.replace(**changes) if changes else spec


def resolve_model(
    text: str, width: float = 1.0, resolution: int | None = None, num_classes: int | None = None
) -> ArchSpec | ClassicSpec:
    """``resolve_arch``, or a classic reference network's name (``lenet5``, ``vgg16``, ...)
    at its default input unless ``resolution`` / ``num_classes`` say otherwise."""
    if text in classic_names():
        return get_classic(text, resolution, num_classes)
    known = text in baseline_names() or looks_like_arch(text)
    if not (known or text.endswith(".json") or Path(text).exists()):
        raise SpecError(
            f"ARCH {text!r} is not a baseline ({', '.join(baseline_names())}), a classic "
            f"network ({', '.join(classic_names())}), an arch string "
            "(r<res>_n<classes>,stem_...,...,head_...) or a spec .json file"
        )
    return resolve_arch(text, width, resolution, num_classes)


def emit(
    rows: list[dict[str, Any]],
    fmt: OutputFormat,
    title: str | None = None,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Print rows as a rich table (per-column ``formats`` and header ``labels``), CSV or
    JSON (raw values, keys unchanged)."""
    if fmt is OutputFormat.json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if fmt is OutputFormat.csv:
        import pandas as pd  # lazily: seconds to import, and only CSV needs it

        print(pd.DataFrame(rows).to_csv(index=False), end="")
        return
    formats = formats or {}
    table = Table(title=title, title_justify="left")
    columns = list(rows[0]) if rows else []
    for col in columns:
        numeric = bool(rows) and isinstance(rows[0][col], int | float)
        table.add_column((labels or {}).get(col, col), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(formats.get(c, _cell)(row[c]) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def renamed(value: T, old_value: T | None, flag: str, old_flag: str) -> T:
    """The value of ``flag``, or of ``old_flag`` (its old name, hidden from --help) with a
    warning that names the new one."""
    if old_value is None:
        return value
    warnings.warn(f"{old_flag} is now {flag}; the old name will go", NasctlWarning, stacklevel=2)
    return old_value

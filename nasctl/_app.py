"""The typer application and its error boundary: every command is registered here and
wrapped by ``guarded``.

Library code raises ``NasctlError``; only here does it become one red line on stderr
and exit code 2. What commands print is ``_output``'s.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import inspect
import re
import shlex
import sys
import typing
import warnings
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's bundled click
from typer.core import TyperGroup, TyperOption

from nasctl._output import err_console
from search_space import NasctlError, NasctlWarning, check_finite, check_threads

__all__ = [
    "app",
    "command_group",
    "fail",
    "guarded",
    "invoked",
    "renamed",
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

    def list_commands(self, ctx: Any) -> list[str]:
        """The top-level commands in the order of the work (``COMMAND_ORDER``), not in the
        order their modules happened to be imported."""
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))


#: How `nasctl --help` lists the commands: the main job (search, read, compare, export),
#: then counting and timing, training one network, and looking inside.
COMMAND_ORDER = (
    "search",
    "results",
    "compare",
    "export",
    "table",
    "latency",
    "lut",
    "train",
    "eval",
    "supernet",
    "arch",
    "space",
    "visualize",
)


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

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_numbers(kwargs)
            with _warnings_as_lines():
                return fn(*args, **kwargs)
        except NasctlError as exc:
            raise fail(as_flag(str(exc), _option_names(fn))) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _option_names(fn: Callable[..., Any]) -> set[str]:
    """The command's parameters that are options, not positional arguments: read from the
    resolved ``Annotated`` metadata (an alias such as ``ArchArgument`` is only a name in the
    string annotation), as typer reads it."""
    hints = typing.get_type_hints(fn, include_extras=True)
    return {
        name
        for name in inspect.signature(fn).parameters
        if not any(
            isinstance(m, typer.models.ArgumentInfo)
            for m in getattr(hints.get(name), "__metadata__", ())
        )
    }


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


def renamed(value: T, old_value: T | None, flag: str, old_flag: str) -> T:
    """The value of ``flag``, or of ``old_flag`` (its old name, hidden from --help) with a
    warning that names the new one."""
    if old_value is None:
        return value
    warnings.warn(f"{old_flag} is now {flag}; the old name will go", NasctlWarning, stacklevel=2)
    return old_value

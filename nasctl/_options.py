"""Options that several commands share, declared once so that their flags and help read
the same everywhere (torch-free at import, so that ``nasctl --help`` stays fast).

The data and training-device options live beside their helpers in ``_data_options`` and
``_device_options``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nasctl._output import OutputFormat

__all__ = [
    "LUT_HELP",
    "STORAGE_HELP",
    "ArchArgument",
    "FormatOption",
    "LatencyThreadsOption",
    "LutOption",
    "NumClassesOption",
    "OldRunsOption",
    "ResolutionOption",
    "RunsOption",
    "SpaceOption",
    "StorageOption",
    "StudyOption",
    "TorchThreadsOption",
    "WidthOption",
    "format_option",
]

# The network: one ARCH and what changes it (arch, latency, export, visualize, train, ...).
ArchArgument = Annotated[
    str, typer.Argument(metavar="ARCH", help="Baseline name, arch string or spec .json file.")
]
WidthOption = Annotated[
    float, typer.Option("--width", "-w", help="Width multiplier (baseline names only).")
]
ResolutionOption = Annotated[
    int | None, typer.Option("--resolution", "-r", help="Input resolution override.")
]
NumClassesOption = Annotated[int | None, typer.Option(help="Number of classes override.")]
SpaceOption = Annotated[
    Path | None,
    typer.Option(help="A space file (TOML) or a built-in space: default, photos, tiny."),
]
LUT_HELP = "Latency lookup table (from `nasctl lut build`)."
LutOption = Annotated[Path | None, typer.Option(help=LUT_HELP)]


def format_option(help_text: str = "Output format.") -> Any:
    """``--format/-f``: how a command prints its rows (table, JSON or CSV), in its words."""
    return typer.Option("--format", "-f", help=help_text)


FormatOption = Annotated[OutputFormat, format_option()]

# The search's folder (RUNS/STUDY.journal, RUNS/STUDY/...): `--runs` in every command that
# writes or reads it (search, compare, results, export); `--out/-o` is what a command writes.
RunsOption = Annotated[
    Path, typer.Option("--runs", help="The search's folder: RUNS/STUDY.journal, RUNS/STUDY/.")
]
#: `--out`, the runs folder's old name in search, compare and results: hidden, warns.
OldRunsOption = Annotated[
    Path | None, typer.Option("--out", hidden=True, help="Old name of --runs.")
]
StudyOption = Annotated[str, typer.Option(help="Study name.")]
STORAGE_HELP = (
    "Optuna storage URL (postgresql://..., sqlite:///f.db) or .journal file "
    "(default RUNS/STUDY.journal)."
)
StorageOption = Annotated[str | None, typer.Option(help=STORAGE_HELP)]

# Threads: of torch's training, and of a latency measurement.
TorchThreadsOption = Annotated[
    int | None, typer.Option(help="Torch threads (default: torch's).", show_default=False)
]
LatencyThreadsOption = Annotated[int, typer.Option(help="Threads for latency measurement.")]

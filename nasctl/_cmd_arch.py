"""`nasctl arch show|plot` and `nasctl space show`: what an architecture and a space are."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from estimators import count, part_layers
from nasctl._app import command_group, guarded
from nasctl._options import (
    LUT_HELP,
    ArchArgument,
    FormatOption,
    NumClassesOption,
    ResolutionOption,
    SpaceOption,
    WidthOption,
    format_option,
)
from nasctl._output import OutputFormat, check_output, console, emit
from nasctl._resolve import resolve_arch
from search_space import BlockSpec, SpecError, format_arch, load_space, space_source

arch_app = command_group(
    "arch", "Inspect one architecture.\n\nExample: `nasctl arch show mobilenet_v3_small`"
)
space_app = command_group(
    "space", "Inspect a search space.\n\nExample: `nasctl space show --space photos`"
)


class ArchFormat(StrEnum):
    table = "table"
    json = "json"
    arch = "arch"


@arch_app.command("show")
@guarded
def arch_show(
    arch: ArchArgument,
    width: WidthOption = 1.0,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
    fmt: Annotated[ArchFormat, format_option("table, json (the spec) or arch (one line).")] = (
        ArchFormat.table
    ),
) -> None:
    """Show the blocks of an architecture with their params and MACs.

    Example: `nasctl arch show mobilenet_v3_small -r 160 -f arch`
    """
    spec = resolve_arch(arch, width, resolution, num_classes)
    if fmt is ArchFormat.json:
        print(spec.to_json())
        return
    if fmt is ArchFormat.arch:
        print(format_arch(spec))
        return
    rows = []
    for part in spec.parts():
        layers = part_layers(part, spec.num_classes)
        row = {
            "part": part.name,
            "kind": type(part.spec).__name__.removesuffix("Spec").lower(),
            "in": f"{part.in_channels}x{part.in_size}x{part.in_size}",
            "k": None,
            "s": None,
            "mid": None,
            "out": layers[-1].out_channels,
            "se": None,
            "act": None,
            "params": sum(layer.params for layer in layers),
            "macs": sum(layer.macs for layer in layers),
        }
        if isinstance(part.spec, BlockSpec):
            b = part.spec
            row.update(
                kind=b.kind.value, k=b.kernel, s=b.stride, mid=b.mid_channels,
                se=b.se_channels or None, act=b.act.value,
            )  # fmt: skip
        rows.append(row)
    report = count(spec)
    emit(rows, OutputFormat.table, f"{arch if len(arch) < 60 else 'architecture'}")
    size = f"{spec.resolution}x{spec.resolution}"
    console.print(
        f"params {report.params:,}  MACs {report.macs:,}  ({size}, {spec.num_classes} classes)"
    )
    console.print(f"arch: {format_arch(spec)}", soft_wrap=True, highlight=False)


@arch_app.command("plot")
@guarded
def arch_plot(
    arch: ArchArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    lut: Annotated[
        Path | None, typer.Option(help=LUT_HELP.rstrip(".") + ": per-block latency.")
    ] = None,
    width: WidthOption = 1.0,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
    title: Annotated[str | None, typer.Option(help="Title (default: ARCH).")] = None,
) -> None:
    """Draw the architecture: one row per stem, block and head with its kernel, expansion,
    SE, activation, stride, channels and MACs (colour for the choices), and its latency
    from a lookup table with --lut.

    Example: `nasctl arch plot mobilenet_v2 -o v2.png --lut photos_lut.json`
    """
    from estimators import load_table
    from results import plot_arch

    spec = resolve_arch(arch, width, resolution, num_classes)
    table = load_table(lut) if lut is not None else None
    if out.suffix.lower() != ".png":
        raise SpecError(f"--out must be a .png file, got {str(out)!r}")
    check_output(out, "--out", directory=False)
    name = title or (arch if len(arch) <= 60 else "architecture")
    try:
        path = plot_arch(spec, out, table, name)
    except OSError as exc:
        raise SpecError(f"cannot write {str(out)!r}: {exc.strerror}") from None
    console.print(f"{len(spec.parts())} parts -> {path}", highlight=False)


@space_app.command("show")
@guarded
def space_show(
    space: SpaceOption = None,
    fmt: FormatOption = OutputFormat.table,
    dump: Annotated[
        bool,
        typer.Option("--dump", help="Print the space file (e.g. a built-in) to copy and edit."),
    ] = False,
) -> None:
    """The choices of a search space and its size (number of distinct architectures).

    Example: `nasctl space show --space photos --dump > my_space.toml`
    """
    if dump:
        print(space_source(space)[0], end="")
        return
    sp = load_space(space)
    if fmt is OutputFormat.json:
        print(json.dumps({
            "name": sp.name, "widths": list(sp.widths), "resolutions": list(sp.resolutions),
            "size": sp.size, "stages": sp.describe(),
        }, indent=2))  # fmt: skip
        return
    emit(sp.describe(), fmt, f"Search space {sp.name!r}", {
        "depth": _set, "kernel": _set, "expansion": _set, "se": _set, "act": _set,
    })  # fmt: skip
    if fmt is OutputFormat.table:
        console.print(
            f"stem {sp.stem.out_channels} ch k{sp.stem.kernel} s{sp.stem.stride} "
            f"{sp.stem.act.value}; "
            f"head conv {sp.head.conv_channels or '-'}, hidden {sp.head.hidden_features or '-'}; "
            f"SE ratio {sp.se_ratio}\n"
            f"widths {_set(list(sp.widths))}, resolutions {_set(list(sp.resolutions))}\n"
            f"size: {sp.size:,} architectures (10^{math.log10(sp.size):.1f})"
        )


def _set(values: list[object]) -> str:
    def one(v: object) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        return f"{v:g}" if isinstance(v, float) else str(v)

    return "{" + ", ".join(one(v) for v in values) + "}"

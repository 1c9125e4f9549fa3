"""`nasctl table`: params and MACs of baselines and architectures."""

from __future__ import annotations

from typing import Annotated

import typer

from estimators import count, standard_conv_macs
from nasctl._app import OutputFormat, app, console, emit, guarded, resolve_arch
from search_space import REFERENCE_COUNTS, baseline_names


def _millions(value: int) -> str:
    return f"{value / 1e6:,.3f}"


@app.command()
@guarded
def table(
    archs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Baseline names, arch strings or spec .json files (default: the four baselines).",
            show_default=False,
        ),
    ] = None,
    width: Annotated[
        list[float] | None,
        typer.Option(
            "--width", "-w", help="Width multiplier(s) for baseline names; repeat for variants."
        ),
    ] = None,
    resolution: Annotated[
        list[int] | None,
        typer.Option("--resolution", "-r", help="Input resolution(s); repeat for variants."),
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(help="Number of classes (default: 1000, or the spec's).")
    ] = None,
    layers: Annotated[
        bool,
        typer.Option("--layers", help="Per-layer breakdown: standard vs depthwise vs pointwise."),
    ] = False,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Parameter and MAC counts (analytic; one multiply-add = 1 MAC, conv + linear only).

    With no ARCH, the four MobileNet baselines; every combination of --width and
    --resolution is listed. A baseline at width 1.0, 224x224, 1000 classes is checked
    against the reference implementation's counts ("ref" column).
    """
    names = archs or baseline_names()
    rows, reports = [], []
    for name in names:
        is_baseline = name in baseline_names()
        for w in (width or [1.0]) if is_baseline else [1.0]:
            for res in resolution or [None]:
                spec = resolve_arch(name, w, res, num_classes)
                report = count(spec)
                ref = REFERENCE_COUNTS.get(name) if is_baseline else None
                at_ref = ref is not None and (w, spec.resolution, spec.num_classes) == (
                    1.0,
                    224,
                    1000,
                )
                rows.append(
                    {
                        "name": name if is_baseline else _short(name),
                        "width": w if is_baseline else None,
                        "resolution": spec.resolution,
                        "classes": spec.num_classes,
                        "params": report.params,
                        "macs": report.macs,
                        "ref": ("exact" if ref == (report.params, report.macs) else "MISMATCH")
                        if at_ref
                        else None,
                    }
                )
                reports.append((rows[-1], spec, report))
        if not is_baseline and width:
            console.print("[yellow]note:[/yellow] --width applies to baseline names only")
    if not layers:
        emit(
            rows,
            fmt,
            "Params and MACs (conv + linear)",
            {"params": _millions, "macs": _millions},
            {"params": "params (M)", "macs": "MACs (M)"},
        )
        return
    layer_rows = []
    for row, _spec, report in reports:
        for layer in report.layers:
            layer_rows.append(
                {
                    "arch": row["name"],
                    "width": row["width"],
                    "resolution": row["resolution"],
                    "layer": layer.name,
                    "op": layer.op,
                    "in": layer.in_channels,
                    "out": layer.out_channels,
                    "k": layer.kernel,
                    "s": layer.stride,
                    "out_size": layer.out_size,
                    "params": layer.params,
                    "macs": layer.macs,
                }
            )
    if fmt is not OutputFormat.table:
        emit(layer_rows, fmt)
        return
    for row, _spec, report in reports:
        title = (
            f"{row['name']} width {row['width'] or '-'} at {row['resolution']}x{row['resolution']}"
        )
        per_layer = [
            {k: v for k, v in r.items() if k not in ("arch", "width", "resolution")}
            for r in layer_rows
            if r["arch"] == row["name"]
            and r["width"] == row["width"]
            and r["resolution"] == row["resolution"]
        ]
        emit(per_layer, fmt, title)
        summary = [
            {
                "op": op,
                "params": params,
                "params %": round(100 * params / report.params, 2),
                "macs": macs,
                "macs %": round(100 * macs / report.macs, 2),
            }
            for op, (params, macs) in report.by_op().items()
        ]
        emit(summary, fmt, "By operation (MobileNetV1 paper, Table 2)")
        separable, standard = standard_conv_macs(report)
        if separable:
            console.print(
                f"depthwise + pointwise pairs: {separable / 1e6:,.2f}M MACs; as standard "
                f"kxk convolutions they would cost {standard / 1e6:,.2f}M "
                f"({standard / separable:.1f}x more)\n"
            )


def _short(arch: str) -> str:
    """An arch string is long: show its head and tail in tables."""
    return arch if len(arch) <= 40 or "," not in arch else f"{arch[:18]}...{arch[-18:]}"

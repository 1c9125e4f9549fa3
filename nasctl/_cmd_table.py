"""`nasctl table`: params, MACs and memory of baselines, classic networks and architectures."""

from __future__ import annotations

from typing import Annotated

import typer

from estimators import count, memory, standard_conv_macs
from nasctl._app import app, guarded, renamed
from nasctl._options import FormatOption
from nasctl._output import OutputFormat, console, emit
from nasctl._resolve import resolve_model
from search_space import CLASSICS, REFERENCE_COUNTS, ArchSpec, baseline_names, classic_names


def _decimal(value: int, scale: int, digits: int) -> str:
    """``value / scale`` to ``digits`` decimals in integer arithmetic: a count above 2^53
    printed through a float would show digits that rounding invented."""
    step = scale // 10**digits
    whole, frac = divmod((value + step // 2) // step, 10**digits)
    return f"{whole:,}.{frac:0{digits}d}"


def _millions(value: int) -> str:
    return _decimal(value, 10**6, 3)


def _megabytes(value: int) -> str:
    return _decimal(value, 10**6, 2)


def _ref(name: str, spec: object, width: float, params: int, macs: int) -> str | None:
    """'exact' / 'MISMATCH' against the published counts at the default input (MobileNets:
    the reference implementations' params and MACs; classic networks: the paper's params),
    None at any other input."""
    if isinstance(spec, ArchSpec) and name in REFERENCE_COUNTS:
        if (width, spec.resolution, spec.num_classes) != (1.0, 224, 1000):
            return None
        return "exact" if REFERENCE_COUNTS[name] == (params, macs) else "MISMATCH"
    entry = CLASSICS.get(name)
    if entry is None or getattr(spec, "resolution", None) != entry.resolution:
        return None
    if getattr(spec, "num_classes", None) != entry.num_classes:
        return None
    return "exact" if entry.params == params else "MISMATCH"


@app.command()
@guarded
def table(
    archs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ARCH",
            help="Baseline names, classic network names (lenet5, alexnet, zfnet, vgg16, "
            "googlenet, resnet18, resnet50), arch strings or spec .json files (default: the "
            "four baselines).",
            show_default=False,
        ),
    ] = None,
    classics: Annotated[
        bool, typer.Option("--classics", help="Add the seven classic reference networks.")
    ] = False,
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
        typer.Option(
            "--per-layer", help="Per-layer breakdown: standard vs depthwise vs pointwise."
        ),
    ] = False,
    show_memory: Annotated[
        bool,
        typer.Option(
            "--memory",
            help="Add the memory of a batch-1 float32 inference: weights + peak activations.",
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    old_layers: Annotated[
        bool | None,
        typer.Option("--layers", hidden=True, help="Old name of --per-layer."),
    ] = None,
) -> None:
    """Parameter and MAC counts (analytic; one multiply-add = 1 MAC, conv + linear only).

    With no ARCH, the four MobileNet baselines; every combination of --width and
    --resolution is listed. The classic networks are reference rows at their papers' input
    (LeNet-5 32x32 grayscale with 10 classes, AlexNet 227x227, the others 224x224) unless
    --resolution / --num-classes say otherwise. "ref" checks a baseline at width 1.0,
    224x224, 1000 classes against the reference implementation's params and MACs, and a
    classic network at its default input against its published parameter count.

    --memory: weights (4 bytes a parameter) + peak activations, where the peak is the
    largest sum of tensors alive at once when the network runs op by op: the op's input and
    output plus every tensor kept for later (residual inputs, finished Inception branches);
    BatchNorm folded, activations and additions in place. In MB (10^6 bytes).

    Examples:

        nasctl table --classics --memory
        nasctl table mobilenet_v2 -w 0.5 -w 1.0 -r 160 -r 224 --per-layer
    """
    layers = renamed(layers, old_layers, "--per-layer", "--layers")
    names = list(archs or ([] if classics else baseline_names()))
    if classics:
        names += [n for n in classic_names() if n not in names]
    rows, reports = [], []
    for name in names:
        is_baseline = name in baseline_names()
        for w in (width or [1.0]) if is_baseline else [1.0]:
            resolutions: list[int | None] = list(resolution) if resolution else [None]
            for res in resolutions:
                spec = resolve_model(name, w, res, num_classes)
                report = count(spec)
                row: dict[str, object] = {
                    "name": name if is_baseline or name in CLASSICS else _short(name),
                    "width": w if is_baseline else None,
                    "resolution": spec.resolution,
                    "classes": spec.num_classes,
                    "params": report.params,
                    "macs": report.macs,
                    "ref": _ref(name, spec, w, report.params, report.macs),
                }
                if show_memory:
                    mem = memory(spec)
                    row |= {
                        "weights_bytes": mem.weights_bytes,
                        "activations_bytes": mem.activations_bytes,
                        "memory_bytes": mem.total_bytes,
                    }
                rows.append(row)
                reports.append((row, spec, report))
        if not is_baseline and width:
            console.print("[yellow]note:[/yellow] --width applies to baseline names only")
    if not layers:
        emit(
            rows,
            fmt,
            "Params and MACs (conv + linear)" + (", memory" if show_memory else ""),
            {"params": _millions, "macs": _millions}
            | dict.fromkeys(("weights_bytes", "activations_bytes", "memory_bytes"), _megabytes),
            {
                "params": "params (M)",
                "macs": "MACs (M)",
                "weights_bytes": "weights (MB)",
                "activations_bytes": "peak activations (MB)",
                "memory_bytes": "memory (MB)",
            },
        )
        shown = [n for n in dict.fromkeys(names) if n in CLASSICS]
        if shown and fmt is OutputFormat.table:
            variants = [
                {"network": n, "paper": CLASSICS[n].title, "variant built": CLASSICS[n].variant}
                for n in shown
            ]
            emit(variants, fmt, "Classic reference networks")
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

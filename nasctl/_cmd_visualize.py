"""`nasctl visualize`: first-layer filters and feature maps of a trained network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasctl._app import app, guarded
from nasctl._options import NumClassesOption, ResolutionOption, WidthOption
from nasctl._output import check_output, console
from nasctl._resolve import resolve_model
from search_space import ArchSpec, ClassicSpec, SpecError


@app.command("visualize")
@guarded
def visualize(
    checkpoint: Annotated[
        Path,
        typer.Option(
            help="Weights: nasctl train's checkpoint.pt, a pt export, or a bare state_dict."
        ),
    ],
    image: Annotated[Path, typer.Option(help="An image file (JPEG, PNG, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the PNGs.")],
    arch: Annotated[
        str | None,
        typer.Argument(
            metavar="ARCH",
            help="Baseline name, classic network name, arch string or spec .json file "
            "(optional when the checkpoint records its architecture).",
        ),
    ] = None,
    layers: Annotated[
        list[str] | None,
        typer.Option(
            "--layers",
            help="Layers whose feature maps to draw (module names: stem, blocks.3, "
            "blocks.3.conv_dw, conv3_1, inception4a; repeat or comma-separate). Default: "
            "the first, a middle and the last block.",
        ),
    ] = None,
    maps: Annotated[int, typer.Option(help="Feature maps drawn per layer.")] = 32,
    width: WidthOption = 1.0,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
) -> None:
    """Draw the first-layer filters and the feature maps of chosen layers for one image.

    Writes OUT/input.png, OUT/filters.png (an image grid) and OUT/features_LAYER.png for
    each layer.

    Example: `nasctl visualize --checkpoint runs/v3s/checkpoint.pt --image cat.jpg -o vis`
    """
    from results import read_checkpoint
    from results import visualize as draw

    check_output(out, "--out", directory=True)
    spec: ArchSpec | ClassicSpec
    if arch is None:
        recorded = read_checkpoint(checkpoint)[1]
        if recorded is None:
            raise SpecError(
                f"checkpoint {str(checkpoint)!r} holds weights only; pass ARCH to say which "
                "architecture they belong to"
            )
        spec = recorded
    else:
        spec = resolve_model(arch, width, resolution, num_classes)
    names = [n.strip() for item in layers or [] for n in item.split(",") if n.strip()]
    result = draw(spec, checkpoint, image, out, names or None, maps)
    for path in (result.input_png, result.filters_png, *result.feature_pngs.values()):
        console.print(str(path), highlight=False)

"""The device options: where models train and at what precision (train, eval, search,
compare, supernet), and where they are timed (search, compare, latency, lut build).
Torch-free at import, so that ``nasctl --help`` stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from estimators import Precision

if TYPE_CHECKING:
    from estimators import TrainDevice

__all__ = [
    "DeviceOption",
    "LatencyDeviceOption",
    "Precision",
    "PrecisionOption",
    "TimingDeviceOption",
    "training_device",
]


DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where models train: cpu, cuda, cuda:N or auto (cuda when present, else cpu).",
    ),
]
_TIMING = "Where latency is measured: cpu or cuda[:N]"
#: Where search and compare time their models (--device is where they train them).
LatencyDeviceOption = Annotated[
    str, typer.Option(help=f"{_TIMING} (--device is where models train).")
]
#: `--device` of the commands that only time models (latency, lut build).
TimingDeviceOption = Annotated[str, typer.Option("--device", help=f"{_TIMING}.")]
PrecisionOption = Annotated[
    Precision,
    typer.Option(
        help="Training precision: auto (fp32 on cpu; bf16 on a GPU that has it, else fp16 "
        "with loss scaling), fp32, bf16 or fp16.",
    ),
]


def training_device(device: str, precision: Precision | str) -> TrainDevice:
    """Resolve --device/--precision before any work (a missing GPU: one line, exit 2)."""
    from estimators import resolve_device

    return resolve_device(device, str(precision))

"""The training-device options shared by train, eval, search, compare and supernet
(torch-free at import, so that ``nasctl --help`` stays fast)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from estimators import Precision

if TYPE_CHECKING:
    from estimators import TrainDevice

__all__ = ["DeviceOption", "Precision", "PrecisionOption", "training_device"]


DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where models train: cpu, cuda, cuda:N or auto (cuda when present, else cpu).",
    ),
]
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

"""Where a model trains and at what precision: the device, mixed precision, memory
layout and host-to-device copies, chosen once and passed to every training loop.

On the CPU at fp32 (the default) nothing changes: the loops run exactly as they always
did, bit for bit. On a CUDA device the defaults are what GPU training recipes use:
autocast to bfloat16 where the GPU supports it, else float16 with a gradient scaler
(Micikevicius et al. 2018, "Mixed precision training", sec. 3.2: loss scaling), NHWC
("channels_last") tensors for the convolutions, uint8 batches copied from pinned host
memory without blocking, and cuDNN restricted to deterministic algorithms.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from estimators._options import Precision
from search_space import NasctlError

__all__ = [
    "DeviceError",
    "Precision",
    "TrainDevice",
    "move_optimizer_state",
    "parse_device",
    "resolve_device",
]

_DEVICE = re.compile(r"^(cpu|auto|cuda(?::(\d+))?)$")


class DeviceError(NasctlError):
    """A training device or precision that cannot be used here."""


_DTYPES = {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}


def parse_device(text: str) -> tuple[str, int | None]:
    """``cpu``, ``auto``, ``cuda`` or ``cuda:N`` -> (kind, index); no hardware check."""
    value = str(text).strip().lower()
    match = _DEVICE.match(value)
    if match is None:
        raise DeviceError(f"device must be cpu, cuda, cuda:N or auto, got {text!r}")
    kind = match.group(1).split(":")[0]
    return kind, int(match.group(2)) if match.group(2) is not None else None


@dataclass(frozen=True)
class TrainDevice:
    """A resolved training device. Build it with ``resolve_device``.

    ``precision`` is never ``auto`` here; ``name`` is the GPU's name ("" on the CPU).
    ``channels_last`` stores images and convolution weights as NHWC; ``deterministic``
    asks cuDNN and torch for deterministic kernels (with a warning where none exists).
    """

    device: torch.device
    precision: Precision = Precision.fp32
    name: str = ""
    channels_last: bool = False
    deterministic: bool = True

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def label(self) -> str:
        """What a checkpoint and a metrics file record: "cpu/fp32", "cuda:0 NVIDIA H200/bf16"."""
        where = str(self.device) + (f" {self.name}" if self.name else "")
        return f"{where}/{self.precision.value}"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """Autocast to the chosen half precision; nothing at fp32."""
        if self.precision is Precision.fp32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision])

    def scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for fp16 (bf16 has fp32's exponent range and needs none)."""
        if self.precision is not Precision.fp16:
            return None
        return torch.amp.GradScaler(self.device.type)

    def place(self, module: nn.Module) -> nn.Module:
        """Move ``module`` here (in place: its Parameter objects stay the same, so an
        optimizer built on them keeps working), NHWC when ``channels_last``."""
        module.to(self.device)
        if self.channels_last:  # Module.to takes memory_format; its stubs do not say so
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return module

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """A host uint8 batch on this device: from pinned memory without blocking on CUDA,
        the tensor itself on the CPU."""
        if not self.is_cuda:
            return images
        return images.pin_memory().to(self.device, non_blocking=True)

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Host labels on this device, as ``batch`` moves images."""
        if not self.is_cuda:
            return labels
        return labels.pin_memory().to(self.device, non_blocking=True)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A float NCHW batch in the memory format the model was placed in."""
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Deterministic kernels for the duration of a training loop on CUDA (settings
        restored after), and the device's random state forked so the caller's is left
        alone. On the CPU this does nothing (the loops fork the CPU generator themselves).
        """
        if not self.is_cuda:
            yield
            return
        index = self.device.index or 0
        previous = (
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        if self.deterministic:
            # cuBLAS is deterministic only with a fixed workspace (CUDA docs, "Results
            # reproducibility"); it must be set before its first use in the process.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.backends.cudnn.benchmark = True
        try:
            with torch.cuda.device(index), torch.random.fork_rng(devices=[index]):
                yield
        finally:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[:2]
            torch.use_deterministic_algorithms(previous[2], warn_only=previous[3])

    def seed_step(self, seed: int) -> None:
        """Seed this device's generator (dropout on a CUDA tensor draws from it, not from
        the CPU generator); a no-op on the CPU."""
        if self.is_cuda:
            torch.cuda.manual_seed(seed)


CPU = TrainDevice(torch.device("cpu"))


def resolve_device(
    device: str | TrainDevice | None = "cpu",
    precision: str | Precision = Precision.auto,
    *,
    channels_last: bool | None = None,
    deterministic: bool = True,
) -> TrainDevice:
    """The ``TrainDevice`` for ``device`` (cpu, cuda, cuda:N or auto: CUDA when present,
    else the CPU) and ``precision`` (auto, fp32, bf16, fp16).

    Refuses a CUDA device on a machine without one, an index past the last GPU, and
    bf16 on a GPU without bf16 support. ``channels_last`` defaults to on for CUDA, off
    on the CPU (where it would change the numbers of today's fp32 runs).
    """
    if isinstance(device, TrainDevice):
        return device
    kind, index = parse_device("cpu" if device is None else device)
    try:
        precision = Precision(str(precision).strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Precision)
        raise DeviceError(f"precision must be one of {allowed}, got {precision!r}") from None
    available = torch.cuda.is_available()
    if kind == "auto":
        kind, index = ("cuda", None) if available else ("cpu", None)
    if kind == "cpu":
        chosen = Precision.fp32 if precision is Precision.auto else precision
        return TrainDevice(
            torch.device("cpu"),
            chosen,
            channels_last=bool(channels_last),
            deterministic=deterministic,
        )
    if not available:
        raise DeviceError(
            f"device {device!r} needs CUDA, but torch {torch.__version__} sees no CUDA device "
            "on this machine; use --device cpu (or auto)"
        )
    count = torch.cuda.device_count()
    index = 0 if index is None else index
    if index >= count:
        raise DeviceError(
            f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    try:  # bf16 that the GPU computes natively, not emulated (pre-Ampere GPUs emulate it)
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch from before the argument
        bf16 = torch.cuda.is_bf16_supported()
    if precision is Precision.auto:
        chosen = Precision.bf16 if bf16 else Precision.fp16
    elif precision is Precision.bf16 and not bf16:
        raise DeviceError(f"precision bf16 is not supported by cuda:{index}; use fp16 or fp32")
    else:
        chosen = precision
    return TrainDevice(
        torch.device("cuda", index),
        chosen,
        name=torch.cuda.get_device_name(index),
        channels_last=True if channels_last is None else channels_last,
        deterministic=deterministic,
    )


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move an optimizer's per-parameter buffers (momentum, Adam moments) to ``device``,
    after its model was moved there (a resumed checkpoint is read onto the CPU)."""
    for state in optimizer.state.values():
        for key, value in state.items():
            # AdamW's "step" stays where torch put it (a CPU scalar unless capturable).
            if isinstance(value, torch.Tensor) and key != "step" and value.device != device:
                state[key] = value.to(device)

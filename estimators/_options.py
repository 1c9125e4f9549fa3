"""Defaults and choices the CLI's options name, apart from the modules that use them:
those import torch, and `nasctl --help` must not wait for it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_DATA", "Backend", "DataMode", "Optimizer", "Precision", "Preset"]

#: The embedded default data set (scikit-learn's 8x8 digits, shipped in the package).
DEFAULT_DATA = "digits"


class Precision(StrEnum):
    """``auto``: fp32 on the CPU, bf16 on a CUDA device that supports it, else fp16."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Preset(StrEnum):
    """Names of the training recipes in ``estimators.PRESETS``."""

    search = "search"
    full = "full"


class Backend(StrEnum):
    """How latency is measured (``estimators.LatencyConfig.backend``)."""

    #: Eager PyTorch with BatchNorm folded into the preceding convolutions.
    TORCH = "torch"
    #: ONNX Runtime, CPU execution provider (the model exported with the TorchScript exporter).
    ONNXRUNTIME = "onnxruntime"
    #: ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``.
    TORCHSCRIPT = "torchscript"


class Optimizer(StrEnum):
    SGD = "sgd-nesterov"
    ADAMW = "adamw"


class DataMode(StrEnum):
    """Where decoded images live: ``memory``, ``stream`` (a file read per batch), or
    ``auto`` (stream when they would not fit in ``MEMORY_SHARE`` of available memory)."""

    MEMORY = "memory"
    STREAM = "stream"
    AUTO = "auto"

"""The export formats, the record of one export, and the error every export step raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from results._preprocessing import Preprocessing
from search_space import ArchSpec, NasctlError, format_arch

__all__ = [
    "EXPORT_FORMAT",
    "MIN_OPSET",
    "TORCHSCRIPT_EXTRA",
    "ExportError",
    "ExportFormat",
    "ExportResult",
]

#: Tag of the ``pt`` format's payload.
EXPORT_FORMAT = "nasctl-export/1"
#: Lowest ONNX opset accepted (issue 6 asks for 17 or later).
MIN_OPSET = 17
#: The TorchScript extra file holding the arch, weights and preprocessing record.
TORCHSCRIPT_EXTRA = "nasctl.json"


class ExportError(NasctlError):
    """An export that cannot be written or whose file does not reproduce the model."""


class ExportFormat(StrEnum):
    JSON = "json"
    ARCH = "arch"
    PY = "py"
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    PT = "pt"
    #: timm's block strings + kwargs, weights under timm's names, a loader (``_timm``).
    TIMM = "timm"

    @property
    def default_name(self) -> str:
        """File name used when ``out`` is a directory."""
        return {
            ExportFormat.JSON: "model.json",
            ExportFormat.ARCH: "model.arch",
            ExportFormat.PY: "model.py",
            ExportFormat.TORCHSCRIPT: "model.torchscript.pt",
            ExportFormat.ONNX: "model.onnx",
            ExportFormat.PT: "model.pt",
            ExportFormat.TIMM: "timm_arch.json",
        }[self]


#: Which ``estimators.Backend`` times each model format (None: not a runnable model).
_LATENCY_BACKEND: dict[ExportFormat, str | None] = {
    ExportFormat.JSON: None,
    ExportFormat.ARCH: None,
    ExportFormat.PY: "torch",
    ExportFormat.TORCHSCRIPT: "torchscript",
    ExportFormat.ONNX: "onnxruntime",
    ExportFormat.PT: "torch",
    ExportFormat.TIMM: None,
}

#: What reads each format back during verification.
_CHECKED_WITH: dict[ExportFormat, str] = {
    ExportFormat.JSON: "ArchSpec.from_json",
    ExportFormat.ARCH: "parse_arch",
    ExportFormat.PY: "the standalone source (torch only)",
    ExportFormat.TORCHSCRIPT: "torch.jit.load",
    ExportFormat.ONNX: "onnxruntime (CPU)",
    ExportFormat.PT: "torch.load + build_model",
    ExportFormat.TIMM: "timm (load_timm.py)",
}


@dataclass(frozen=True)
class ExportResult:
    """What was written and how well the file reproduces the model.

    ``max_abs_diff`` compares the exported file's logits with nasctl's PyTorch model on
    the same seeded batch (None for json/arch, which are checked by parsing back);
    ``max_abs_output`` is the largest reference logit, the scale to read the difference
    against (randomly initialised networks give tiny logits).
    """

    format: ExportFormat
    path: Path
    files: tuple[Path, ...]
    spec: ArchSpec
    input_shape: tuple[int, int, int, int]
    checked_with: str
    max_abs_diff: float | None
    max_abs_output: float | None
    tolerance: float
    #: What the file records for deployment (None: the weights' source recorded none).
    preprocessing: Preprocessing | None = None
    #: False when the weights are random (no checkpoint): not a result to deploy.
    trained: bool = True

    @property
    def latency_backend(self) -> str | None:
        """The ``estimators.Backend`` value that times this format (None: json/arch)."""
        return _LATENCY_BACKEND[self.format]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "path": str(self.path),
            "files": [str(f) for f in self.files],
            "arch": format_arch(self.spec),
            "input_shape": list(self.input_shape),
            "checked_with": self.checked_with,
            "max_abs_diff": self.max_abs_diff,
            "max_abs_output": self.max_abs_output,
            "tolerance": self.tolerance,
            "trained": self.trained,
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
        }

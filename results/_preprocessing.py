"""What a deployed model needs besides its weights: the input resolution, the per-channel
mean and standard deviation it was trained with, and the class names its logits stand for.

nasctl's data pipeline (``estimators._decode``) decodes an image to RGB, resizes its shorter
side to the resolution (bilinear; JPEGs decoded at a reduced scale first with PIL's
``draft``), centre-crops a square, scales to [0, 1] (x / 255) and normalises each channel
with the training split's mean and std. Exports write these values in the format's own
metadata (ONNX ``metadata_props``, TorchScript extra files, the pt payload, constants in
the generated ``py``) under the keys of :meth:`Preprocessing.to_metadata`.

Torch-free: the CLI and the generated source read it without loading torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search_space import ArchSpec, NasctlError

__all__ = ["PREPROCESSING", "Preprocessing", "PreprocessingError"]

#: How an image becomes the model's input, in words (written into every export).
PREPROCESSING = (
    "RGB; shorter side resized to resolution (bilinear; JPEG decoded with PIL draft), "
    "centre crop resolution x resolution; x / 255; (x - mean) / std per channel; "
    "NCHW float32"
)


class PreprocessingError(NasctlError):
    """Recorded input statistics or class names that cannot describe the model's input."""


@dataclass(frozen=True)
class Preprocessing:
    """Input resolution, per-channel mean/std of x / 255 (RGB order) and class names
    (index i = logit i)."""

    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...]

    @classmethod
    def of(
        cls,
        spec: ArchSpec,
        mean: Sequence[Any],
        std: Sequence[Any],
        classes: Sequence[Any],
        where: str = "checkpoint",
    ) -> Preprocessing:
        """Check recorded values against ``spec`` (``where`` names their source in errors)."""
        values: dict[str, tuple[float, float, float]] = {}
        for name, seq in (("mean", mean), ("std", std)):
            try:
                floats = tuple(float(v) for v in seq)
            except (TypeError, ValueError):
                floats = ()
            if len(floats) != 3 or not all(math.isfinite(v) for v in floats):
                raise PreprocessingError(
                    f"{where}: {name} must be 3 finite numbers (one per RGB channel), got {seq!r}"
                )
            values[name] = (floats[0], floats[1], floats[2])
        if not all(v > 0 for v in values["std"]):
            raise PreprocessingError(f"{where}: std must be positive, got {list(std)!r}")
        names = tuple(str(c) for c in classes)
        if len(names) != spec.num_classes:
            raise PreprocessingError(
                f"{where}: classes lists {len(names)} names but the architecture has "
                f"{spec.num_classes} outputs"
            )
        return cls(spec.resolution, values["mean"], values["std"], names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "mean": list(self.mean),
            "std": list(self.std),
            "classes": list(self.classes),
            "preprocessing": PREPROCESSING,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], spec: ArchSpec, where: str) -> Preprocessing:
        try:
            resolution = int(data["resolution"])
            prep = cls.of(spec, data["mean"], data["std"], data["classes"], where)
        except (KeyError, TypeError, ValueError) as exc:
            raise PreprocessingError(f"{where}: preprocessing record lacks {exc}") from None
        if resolution != spec.resolution:
            raise PreprocessingError(
                f"{where}: resolution {resolution} differs from the architecture's "
                f"{spec.resolution}"
            )
        return prep

    def to_metadata(self) -> dict[str, str]:
        """String key/value pairs (ONNX ``metadata_props``): numbers and lists as JSON."""
        return {
            "resolution": str(self.resolution),
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "classes": json.dumps(list(self.classes)),
            "preprocessing": PREPROCESSING,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], spec: ArchSpec, where: str) -> Preprocessing:
        """Read :meth:`to_metadata`'s pairs back."""
        try:
            data = {k: json.loads(meta[k]) for k in ("resolution", "mean", "std", "classes")}
        except (KeyError, json.JSONDecodeError) as exc:
            raise PreprocessingError(f"{where}: metadata lacks a readable {exc}") from None
        return cls.from_dict(data, spec, where)

"""A training run's folder, as ``nasctl train`` leaves it: ``checkpoint.pt`` (resume,
``nasctl eval``, ``export``), ``spec.json`` (written before training starts, so a run
that dies early still says what it trained) and ``metrics.json`` (after it ends)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: the CLI's help names these files
    from estimators._evaluate import EvalResult
    from estimators._images import ImageData
    from estimators._training import TrainState

__all__ = ["CHECKPOINT_FILE", "METRICS_FILE", "SPEC_FILE", "write_metrics", "write_spec"]

CHECKPOINT_FILE = "checkpoint.pt"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"


def write_spec(out: str | Path, state: TrainState) -> Path:
    """``out/spec.json``: the architecture being trained (``out`` is created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPEC_FILE
    path.write_text(state.spec.to_json() + "\n")
    return path


def write_metrics(
    out: str | Path, state: TrainState, data: ImageData, final: EvalResult, arch: str
) -> dict[str, Any]:
    """``out/metrics.json``: the final validation scores of ``state`` on ``data``, how and
    where it trained, and its per-epoch history; returns what it wrote. ``arch`` is the
    architecture as the user named it (a baseline name, an arch string, a file)."""
    metrics: dict[str, Any] = {
        "arch": arch,
        "data": data.name,
        "resolution": state.spec.resolution,
        "classes": list(state.classes),
        "recipe": state.recipe.to_dict(),
        "device": state.device,
        "top1": final.top1,
        "top5": final.top5,
        "val_loss": final.loss,
        "per_class": final.per_class,
        "train_seconds": state.train_seconds,
        "images_per_second": state.images / max(state.train_seconds, 1e-9),
        "history": state.history,
        "skipped_images": list(data.skipped),
    }
    (Path(out) / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics

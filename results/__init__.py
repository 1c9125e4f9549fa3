"""What was found: study storage, Pareto front, tables, plots, export."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from results._options import SearchTarget
from results._pareto import (
    Direction,
    ParetoError,
    dominates,
    finite_mask,
    hypervolume,
    non_dominated_mask,
    non_dominated_ranks,
    pareto_front,
)

__all__ = [
    "EXPORT_FORMAT",
    "MIN_OPSET",
    "Direction",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "ParetoError",
    "SearchConfig",
    "SearchError",
    "SearchTarget",
    "StudyError",
    "StudyMeta",
    "Visualization",
    "VisualizeError",
    "baselines_of",
    "dominates",
    "export_model",
    "exported_latency",
    "feature_layers",
    "finite_mask",
    "front_frame",
    "hypervolume",
    "load_exported",
    "load_pt",
    "non_dominated_mask",
    "non_dominated_ranks",
    "open_existing",
    "open_storage",
    "pareto_front",
    "plot_arch",
    "plot_front",
    "random_weights",
    "read_checkpoint",
    "run_search",
    "standalone_source",
    "trials_frame",
    "visualize",
]


# These submodules import torch, optuna or pandas (seconds): they load on first use, so that
# the light parts (and `nasctl --help`) do not pay for them.
if TYPE_CHECKING:
    from results._archplot import plot_arch
    from results._codegen import standalone_source
    from results._export import (
        EXPORT_FORMAT,
        MIN_OPSET,
        ExportError,
        ExportFormat,
        ExportResult,
        export_model,
        exported_latency,
        load_exported,
        load_pt,
        random_weights,
        read_checkpoint,
    )
    from results._report import front_frame, plot_front
    from results._search import (
        SearchConfig,
        SearchError,
        baselines_of,
        open_existing,
        run_search,
    )
    from results._study import StudyError, StudyMeta, open_storage, trials_frame
    from results._visualize import Visualization, VisualizeError, feature_layers, visualize

_LAZY = {
    "plot_arch": "results._archplot",
    "standalone_source": "results._codegen",
    "EXPORT_FORMAT": "results._export",
    "MIN_OPSET": "results._export",
    "ExportError": "results._export",
    "ExportFormat": "results._export",
    "ExportResult": "results._export",
    "export_model": "results._export",
    "exported_latency": "results._export",
    "load_exported": "results._export",
    "load_pt": "results._export",
    "random_weights": "results._export",
    "read_checkpoint": "results._export",
    "front_frame": "results._report",
    "plot_front": "results._report",
    "SearchConfig": "results._search",
    "SearchError": "results._search",
    "baselines_of": "results._search",
    "open_existing": "results._search",
    "run_search": "results._search",
    "StudyError": "results._study",
    "StudyMeta": "results._study",
    "open_storage": "results._study",
    "trials_frame": "results._study",
    "Visualization": "results._visualize",
    "VisualizeError": "results._visualize",
    "feature_layers": "results._visualize",
    "visualize": "results._visualize",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

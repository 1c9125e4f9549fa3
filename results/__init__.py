"""What was found: study storage, Pareto front, tables, plots, export."""

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
from results._report import front_frame, plot_front
from results._search import (
    SearchConfig,
    SearchError,
    SearchTarget,
    baselines_of,
    open_existing,
    run_search,
)
from results._study import StudyError, StudyMeta, open_storage, trials_frame
from results._visualize import Visualization, VisualizeError, feature_layers, visualize

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

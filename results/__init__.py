"""What was found: study storage, Pareto front, tables, plots, export."""

from results._codegen import standalone_source
from results._export import (
    EXPORT_FORMAT,
    MIN_OPSET,
    ExportError,
    ExportFormat,
    ExportResult,
    export_model,
    load_exported,
    load_pt,
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

__all__ = [
    "EXPORT_FORMAT",
    "MIN_OPSET",
    "Direction",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "ParetoError",
    "dominates",
    "export_model",
    "finite_mask",
    "hypervolume",
    "load_exported",
    "load_pt",
    "non_dominated_mask",
    "non_dominated_ranks",
    "pareto_front",
    "read_checkpoint",
    "standalone_source",
]

"""What was found: study storage, Pareto front, tables, plots, export."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from results._options import AccuracyMode, Sampler, SearchTarget
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
    "ACC_COST",
    "EXPORT_FORMAT",
    "MIN_OPSET",
    "SEARCH_LATENCY",
    "TARGET_COLUMNS",
    "TARGET_LABELS",
    "TARGET_UNITS",
    "AccuracyMode",
    "BaselineStep",
    "Direction",
    "Event",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "ParetoError",
    "Sampler",
    "SearchConfig",
    "SearchError",
    "SearchOutputs",
    "SearchTarget",
    "StudyError",
    "StudyMeta",
    "Visualization",
    "VisualizeError",
    "baselines_of",
    "check_options",
    "check_weights",
    "checkpoint_preprocessing",
    "choose_contenders",
    "compare_winner",
    "dominates",
    "export_model",
    "export_path",
    "exported_latency",
    "feature_layers",
    "fidelity_recipe",
    "finite_mask",
    "front_frame",
    "hypervolume",
    "load_exported",
    "load_pt",
    "markdown_report",
    "next_steps",
    "non_dominated_mask",
    "non_dominated_ranks",
    "open_existing",
    "open_storage",
    "pareto_front",
    "pareto_title",
    "parse_max_latency",
    "pick_trial",
    "plot_arch",
    "plot_compare",
    "plot_front",
    "random_weights",
    "read_checkpoint",
    "run_compare",
    "run_search",
    "search_report",
    "standalone_source",
    "study_unit",
    "timm_arch",
    "trials_frame",
    "visualize",
    "write_search_outputs",
]


# These submodules import torch, optuna or pandas (seconds): they load on first use, so that
# the light parts (and `nasctl --help`) do not pay for them.
if TYPE_CHECKING:
    from results._archplot import plot_arch
    from results._baselines import baselines_of
    from results._checkpoint import (
        check_weights,
        checkpoint_preprocessing,
        random_weights,
        read_checkpoint,
    )
    from results._codegen import standalone_source
    from results._compare import choose_contenders, run_compare
    from results._compare_report import markdown_report, plot_compare
    from results._export import check_options, export_model, export_path
    from results._export_format import (
        EXPORT_FORMAT,
        MIN_OPSET,
        ExportError,
        ExportFormat,
        ExportResult,
    )
    from results._exported import exported_latency, load_exported, load_pt
    from results._halving import ACC_COST, fidelity_recipe
    from results._report import (
        TARGET_COLUMNS,
        front_frame,
        next_steps,
        pareto_title,
        pick_trial,
        plot_front,
        search_report,
        study_unit,
    )
    from results._search import run_search
    from results._search_config import (
        SEARCH_LATENCY,
        TARGET_LABELS,
        TARGET_UNITS,
        BaselineStep,
        Event,
        SearchConfig,
        SearchError,
        parse_max_latency,
    )
    from results._search_outputs import SearchOutputs, write_search_outputs
    from results._study import StudyError, StudyMeta, open_existing, open_storage, trials_frame
    from results._timm import timm_arch
    from results._visualize import Visualization, VisualizeError, feature_layers, visualize
    from results._winner import compare_winner

_LAZY = {
    "plot_arch": "results._archplot",
    "check_weights": "results._checkpoint",
    "checkpoint_preprocessing": "results._checkpoint",
    "random_weights": "results._checkpoint",
    "read_checkpoint": "results._checkpoint",
    "standalone_source": "results._codegen",
    "choose_contenders": "results._compare",
    "markdown_report": "results._compare_report",
    "plot_compare": "results._compare_report",
    "run_compare": "results._compare",
    "check_options": "results._export",
    "export_model": "results._export",
    "export_path": "results._export",
    "EXPORT_FORMAT": "results._export_format",
    "MIN_OPSET": "results._export_format",
    "ExportError": "results._export_format",
    "ExportFormat": "results._export_format",
    "ExportResult": "results._export_format",
    "exported_latency": "results._exported",
    "load_exported": "results._exported",
    "load_pt": "results._exported",
    "ACC_COST": "results._halving",
    "fidelity_recipe": "results._halving",
    "TARGET_COLUMNS": "results._report",
    "front_frame": "results._report",
    "next_steps": "results._report",
    "pareto_title": "results._report",
    "pick_trial": "results._report",
    "plot_front": "results._report",
    "search_report": "results._report",
    "study_unit": "results._report",
    "timm_arch": "results._timm",
    "SEARCH_LATENCY": "results._search_config",
    "TARGET_LABELS": "results._search_config",
    "TARGET_UNITS": "results._search_config",
    "BaselineStep": "results._search_config",
    "Event": "results._search_config",
    "SearchConfig": "results._search_config",
    "SearchError": "results._search_config",
    "parse_max_latency": "results._search_config",
    "baselines_of": "results._baselines",
    "open_existing": "results._study",
    "run_search": "results._search",
    "SearchOutputs": "results._search_outputs",
    "write_search_outputs": "results._search_outputs",
    "StudyError": "results._study",
    "StudyMeta": "results._study",
    "open_storage": "results._study",
    "trials_frame": "results._study",
    "Visualization": "results._visualize",
    "VisualizeError": "results._visualize",
    "feature_layers": "results._visualize",
    "visualize": "results._visualize",
    "compare_winner": "results._winner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

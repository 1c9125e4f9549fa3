"""What was found: study storage, Pareto front, tables, plots, export."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from search_space._lazy import lazy_exports

__all__ = [
    "ACC_COST",
    "EXPORT_FORMAT",
    "MIN_OPSET",
    "SEARCH_LATENCY",
    "SUMMARY_COLUMNS",
    "TARGET_COLUMNS",
    "TARGET_LABELS",
    "TARGET_UNITS",
    "TRIAL_COLUMNS",
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
    "write_compare_outputs",
    "write_search_outputs",
]


# These submodules import torch, optuna or pandas (seconds): they load on first use, so that
# the light parts (and `nasctl --help`) do not pay for them. lazy_exports reads the names and
# their modules from this block.
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
    from results._compare_report import markdown_report, plot_compare, write_compare_outputs
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
    from results._study import (
        SUMMARY_COLUMNS,
        TRIAL_COLUMNS,
        StudyError,
        StudyMeta,
        open_existing,
        open_storage,
        trials_frame,
    )
    from results._timm import timm_arch
    from results._visualize import Visualization, VisualizeError, feature_layers, visualize
    from results._winner import compare_winner

__getattr__ = lazy_exports(__name__)

"""What an architecture costs and how good it is: MACs/params, latency, accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimators._counting import (
    CostReport,
    LayerCost,
    count,
    layer_cost,
    part_layers,
    standard_conv_macs,
)
from estimators._download import CIFAR10_MD5, CIFAR10_URL, DataError, cache_dir, download_cifar10
from estimators._memory import MemoryReport, memory
from estimators._options import DEFAULT_DATA, Backend, DataMode, Optimizer, Precision, Preset
from estimators._run import CHECKPOINT_FILE, METRICS_FILE, SPEC_FILE, write_metrics, write_spec
from search_space._lazy import lazy_exports

__all__ = [
    "CHECKPOINT_FILE",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DEFAULT_DATA",
    "METRICS_FILE",
    "PRESETS",
    "SPEC_FILE",
    "SUPERNET_FORMAT",
    "Backend",
    "Correction",
    "CostReport",
    "DataError",
    "DataIdentity",
    "DataMode",
    "DeviceError",
    "DiskImages",
    "EvalResult",
    "ImageData",
    "LatencyConfig",
    "LatencyError",
    "LatencyResult",
    "LatencyTable",
    "LayerCost",
    "LockTimeout",
    "LutError",
    "MemoryReport",
    "Optimizer",
    "Precision",
    "Preset",
    "Recipe",
    "RecipeError",
    "Supernet",
    "SupernetError",
    "SupernetProgress",
    "SupernetRecipe",
    "SupernetState",
    "Target",
    "TrainDevice",
    "TrainProgress",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "ValidationReport",
    "augment",
    "batches_per_epoch",
    "build_table",
    "cache_dir",
    "count",
    "data_identity",
    "download_cifar10",
    "evaluate",
    "fit",
    "fit_supernet",
    "fold_batchnorm",
    "fvcore_macs",
    "get_recipe",
    "host_info",
    "latency_lock",
    "layer_cost",
    "load_checkpoint",
    "load_data",
    "load_supernet",
    "load_supernet_state",
    "load_table",
    "measure",
    "measure_many",
    "memory",
    "naswot",
    "new_state",
    "new_supernet_state",
    "parse_device",
    "part_key",
    "part_layers",
    "part_target",
    "predict",
    "recalibrate_bn",
    "resolve_device",
    "save_checkpoint",
    "save_supernet",
    "save_table",
    "standard_conv_macs",
    "train_and_evaluate",
    "train_batch",
    "validate_table",
    "write_metrics",
    "write_spec",
]


# These submodules import torch, optuna or pandas (seconds): they load on first use, so that
# the light parts (and `nasctl --help`) do not pay for them. lazy_exports reads the names and
# their modules from this block.
if TYPE_CHECKING:
    from estimators._data import load_data
    from estimators._device import (
        DeviceError,
        TrainDevice,
        parse_device,
        resolve_device,
    )
    from estimators._evaluate import EvalResult, evaluate, recalibrate_bn
    from estimators._fvcore import fvcore_macs
    from estimators._images import DiskImages, ImageData
    from estimators._latency import (
        LatencyConfig,
        LatencyError,
        LatencyResult,
        LockTimeout,
        Target,
        fold_batchnorm,
        host_info,
        latency_lock,
        measure,
        measure_many,
        part_target,
    )
    from estimators._loop import augment, batches_per_epoch, train_batch
    from estimators._lut import (
        Correction,
        LatencyTable,
        LutError,
        load_table,
        part_key,
        predict,
        save_table,
    )
    from estimators._lut_build import build_table
    from estimators._lut_validate import ValidationReport, validate_table
    from estimators._proxies import naswot
    from estimators._recipe import (
        PRESETS,
        Recipe,
        RecipeError,
        SupernetRecipe,
        TrainingDiverged,
        get_recipe,
    )
    from estimators._supernet import DataIdentity, Supernet, SupernetError, data_identity
    from estimators._supernet_train import (
        SUPERNET_FORMAT,
        SupernetProgress,
        SupernetState,
        fit_supernet,
        load_supernet,
        load_supernet_state,
        new_supernet_state,
        save_supernet,
    )
    from estimators._training import (
        TrainProgress,
        TrainResult,
        TrainState,
        fit,
        load_checkpoint,
        new_state,
        save_checkpoint,
        train_and_evaluate,
    )

__getattr__ = lazy_exports(__name__)

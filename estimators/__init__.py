"""What an architecture costs and how good it is: MACs/params, latency, accuracy."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
# the light parts (and `nasctl --help`) do not pay for them.
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

_LAZY = {
    "ImageData": "estimators._images",
    "DiskImages": "estimators._images",
    "load_data": "estimators._data",
    "DeviceError": "estimators._device",
    "TrainDevice": "estimators._device",
    "parse_device": "estimators._device",
    "resolve_device": "estimators._device",
    "fvcore_macs": "estimators._fvcore",
    "LatencyConfig": "estimators._latency",
    "LatencyError": "estimators._latency",
    "LatencyResult": "estimators._latency",
    "LockTimeout": "estimators._latency",
    "Target": "estimators._latency",
    "fold_batchnorm": "estimators._latency",
    "host_info": "estimators._latency",
    "latency_lock": "estimators._latency",
    "measure": "estimators._latency",
    "measure_many": "estimators._latency",
    "part_target": "estimators._latency",
    "Correction": "estimators._lut",
    "LatencyTable": "estimators._lut",
    "LutError": "estimators._lut",
    "ValidationReport": "estimators._lut_validate",
    "build_table": "estimators._lut_build",
    "load_table": "estimators._lut",
    "part_key": "estimators._lut",
    "predict": "estimators._lut",
    "save_table": "estimators._lut",
    "validate_table": "estimators._lut_validate",
    "naswot": "estimators._proxies",
    "DataIdentity": "estimators._supernet",
    "Supernet": "estimators._supernet",
    "SupernetError": "estimators._supernet",
    "data_identity": "estimators._supernet",
    "SUPERNET_FORMAT": "estimators._supernet_train",
    "SupernetProgress": "estimators._supernet_train",
    "SupernetRecipe": "estimators._recipe",
    "SupernetState": "estimators._supernet_train",
    "fit_supernet": "estimators._supernet_train",
    "load_supernet": "estimators._supernet_train",
    "load_supernet_state": "estimators._supernet_train",
    "new_supernet_state": "estimators._supernet_train",
    "save_supernet": "estimators._supernet_train",
    "PRESETS": "estimators._recipe",
    "EvalResult": "estimators._evaluate",
    "Recipe": "estimators._recipe",
    "RecipeError": "estimators._recipe",
    "TrainingDiverged": "estimators._recipe",
    "TrainProgress": "estimators._training",
    "TrainResult": "estimators._training",
    "TrainState": "estimators._training",
    "augment": "estimators._loop",
    "batches_per_epoch": "estimators._loop",
    "evaluate": "estimators._evaluate",
    "fit": "estimators._training",
    "get_recipe": "estimators._recipe",
    "load_checkpoint": "estimators._training",
    "new_state": "estimators._training",
    "recalibrate_bn": "estimators._evaluate",
    "save_checkpoint": "estimators._training",
    "train_and_evaluate": "estimators._training",
    "train_batch": "estimators._loop",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

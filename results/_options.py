"""The search's choices as enums, apart from the search itself: the CLI declares its
options with them without importing torch and optuna (`nasctl --help` stays fast)."""

from __future__ import annotations

from enum import StrEnum


class SearchTarget(StrEnum):
    latency = "latency"
    flops = "flops"
    params = "params"


class Sampler(StrEnum):
    nsga2 = "nsga2"
    tpe = "tpe"
    random = "random"


class AccuracyMode(StrEnum):
    """How a candidate's accuracy is estimated (README and docs/accuracy.md)."""

    train = "train"  # every candidate trained with the study's recipe
    halving = "halving"  # successive halving on Pareto rank, up to the study's recipe
    supernet = "supernet"  # scored by a weight-sharing supernet, no training

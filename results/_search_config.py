"""What a search is asked to do: SearchConfig (validated on construction), the
``--max-latency`` forms, the latency protocols and the events a progress view receives."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from estimators import LatencyConfig, Recipe, resolve_device
from results._options import AccuracyMode, Sampler, SearchTarget
from search_space import MAX_RESOLUTION, NasctlError, check_threads


class SearchError(NasctlError):
    """A search request that cannot be run."""


#: Unit of each target as stored and plotted.
TARGET_UNITS = {
    SearchTarget.latency: "latency_ms",
    SearchTarget.flops: "mmacs",
    SearchTarget.params: "mparams",
}
TARGET_LABELS = {
    SearchTarget.latency: "latency (ms)",
    SearchTarget.flops: "MACs (M)",
    SearchTarget.params: "params (M)",
}

#: A quick protocol for one candidate inside a search: 3 rounds x 10 calls after warm-up.
SEARCH_LATENCY = LatencyConfig(rounds=3, repeats=10, min_warmup=5, max_warmup=50)

#: The baselines are timed together, in interleaved rounds with MobileNetV2 timed in
#: every round (compare's protocol): their figures set a budget and are what a candidate
#: is held against, so one quick measurement each under load (which once put V3-Small
#: above V3-Large) is not enough. Device and threads come from the search's protocol.
BASELINE_LATENCY = LatencyConfig(rounds=5, repeats=20)

#: The reference timed in every round of the baselines' measurement.
BASELINE_REFERENCE = "mobilenet_v2"

_FASTEST = re.compile(r"fastest-baseline(?:-(?P<pct>\d+(?:\.\d+)?)%)?")


def parse_max_latency(text: str | None) -> tuple[float | None, float | None]:
    """``--max-latency``: milliseconds, or ``fastest-baseline`` / ``fastest-baseline-N%``
    (N% under the fastest baseline, timed at the baselines' resolution when the search
    starts). Returns (ms, percent): one of them set, or neither."""
    if text is None:
        return None, None
    value = text.strip().lower()
    match = _FASTEST.fullmatch(value)
    if match is not None:
        pct = float(match["pct"] or 0.0)
        if not pct < 100:
            raise SearchError(
                f"--max-latency {text}: the percent under the fastest baseline must be below 100"
            )
        return None, pct
    try:
        ms = float(value)
    except ValueError:
        raise SearchError(
            f"--max-latency must be milliseconds (e.g. 2.5), fastest-baseline or "
            f"fastest-baseline-N% (e.g. fastest-baseline-5%), got {text!r}"
        ) from None
    return ms, None


@dataclass(frozen=True)
class BaselineStep:
    """A baseline's turn, for a progress view: the ``index``-th of ``total`` this worker
    trains (1-based), and its record once it is done."""

    name: str
    index: int
    total: int
    record: dict[str, Any] | None = None


@dataclass(frozen=True)
class SearchConfig:
    study: str
    target: SearchTarget = SearchTarget.latency
    space_path: Path | None = None
    data: str = "digits"
    #: Where decoded images live: memory, stream (a file read per batch) or auto.
    data_mode: str = "auto"
    trials: int = 12
    timeout: float | None = None
    sampler: Sampler = Sampler.nsga2
    population: int = 8
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)
    fidelity: str = "search"
    #: Training images each candidate sees (the fidelity): epochs follow from the size of
    #: the training split, or a subset is used when the split is larger.
    images_per_candidate: int | None = 6000
    baseline_resolution: int | None = None
    lut_path: Path | None = None
    latency: LatencyConfig = SEARCH_LATENCY
    threads: int | None = None
    max_latency_ms: float | None = None
    max_mmacs: float | None = None
    max_mparams: float | None = None
    #: A latency budget this many percent under the fastest baseline, timed when the
    #: search starts (``--max-latency fastest-baseline-N%``); excludes max_latency_ms.
    max_latency_under_fastest_pct: float | None = None
    baselines: bool = True
    accuracy: AccuracyMode = AccuracyMode.train
    #: Halving: the promotion ratio (the best 1/eta of a rung go up; budgets grow x eta).
    eta: int = 3
    #: Halving: the lowest rung's share of the per-candidate budget (default 1/eta^2).
    min_fidelity: float | None = None
    #: Supernet: the file written by `nasctl supernet train` (required with it, only then).
    supernet_path: Path | None = None
    #: Supernet: batches of 128 training images each candidate's BatchNorm statistics are
    #: recomputed on (OFA, Cai et al. 2020, sec. 3.2, uses 2,000 images; 8 x 128 here).
    recal_batches: int = 8
    #: Where candidates train (and the supernet scores): cpu, cuda, cuda:N or auto; and
    #: at what precision (``estimators.resolve_device``). Latency's device is
    #: ``latency.device``.
    device: str = "cpu"
    precision: str = "auto"

    def __post_init__(self) -> None:
        for name, kind in (
            ("target", SearchTarget),
            ("sampler", Sampler),
            ("accuracy", AccuracyMode),
        ):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                allowed = ", ".join(k.value for k in kind)
                raise SearchError(
                    f"{name} must be one of {allowed}, got {getattr(self, name)!r}"
                ) from None
        if self.seed < 0:
            raise SearchError(f"seed must be an integer >= 0, got {self.seed}")
        if self.trials < 1:
            raise SearchError(f"trials must be at least 1, got {self.trials}")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise SearchError(f"timeout must be positive seconds, got {self.timeout}")
        if self.threads is not None:
            check_threads(self.threads, "threads")
        if self.images_per_candidate is not None and self.images_per_candidate < 1:
            raise SearchError(
                f"images per candidate must be positive, got {self.images_per_candidate}"
            )
        res = self.baseline_resolution
        if res is not None and not (0 < res <= MAX_RESOLUTION and res % 8 == 0):
            raise SearchError(
                f"baseline_resolution must be a positive multiple of 8 up to {MAX_RESOLUTION}, "
                f"got {res!r}"
            )
        if self.population < 2:
            raise SearchError(f"population must be at least 2, got {self.population}")
        for name in ("max_latency_ms", "max_mmacs", "max_mparams"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise SearchError(f"{name} must be a positive number, got {value}")
        pct = self.max_latency_under_fastest_pct
        if pct is not None:
            if not 0 <= pct < 100:  # False for NaN too
                raise SearchError(
                    f"max_latency_under_fastest_pct must be a percent in [0, 100), got {pct!r}"
                )
            if self.max_latency_ms is not None:
                raise SearchError("give max_latency_ms or max_latency_under_fastest_pct, not both")
        if not self.study or any(c in self.study for c in "/\\ ") or self.study.startswith("."):
            raise SearchError(f"study must be a name without spaces or slashes, got {self.study!r}")
        if not isinstance(self.eta, int) or isinstance(self.eta, bool) or self.eta < 2:
            raise SearchError(f"eta must be an integer >= 2, got {self.eta!r}")
        low = self.min_fidelity
        if low is not None and not (0 < low < 1):  # False for NaN too
            raise SearchError(f"min_fidelity must be a fraction in (0, 1), got {low!r}")
        if self.accuracy is not AccuracyMode.halving:
            # eta's default (3) stands for "not given": the CLI passes it either way.
            for name, given in (("eta", self.eta != 3), ("min_fidelity", low is not None)):
                if given:
                    raise SearchError(
                        f"{name} only applies to accuracy 'halving', got accuracy "
                        f"{self.accuracy.value!r}"
                    )
        if low is not None and low > 1 / self.eta + 1e-9:
            raise SearchError(
                f"min_fidelity {low:g} leaves no rung below the full budget with eta "
                f"{self.eta}: it must be at most 1/eta = {1 / self.eta:.4g}"
            )
        if not isinstance(self.recal_batches, int) or self.recal_batches < 1:
            raise SearchError(f"recal_batches must be an integer >= 1, got {self.recal_batches!r}")
        resolve_device(self.device, self.precision)  # a missing GPU is refused before any work
        if self.accuracy is AccuracyMode.supernet and self.supernet_path is None:
            raise SearchError("accuracy 'supernet' needs supernet_path (a supernet file)")
        if self.accuracy is not AccuracyMode.supernet and self.supernet_path is not None:
            raise SearchError(
                f"supernet_path is only read with accuracy 'supernet', got {self.accuracy.value!r}"
            )

    @property
    def lowest_fidelity(self) -> float:
        return self.min_fidelity if self.min_fidelity is not None else float(self.eta) ** -2

    @property
    def budgets(self) -> dict[str, float | None]:
        return {
            "latency_ms": self.max_latency_ms,
            "mmacs": self.max_mmacs,
            "mparams": self.max_mparams,
        }


@dataclass(frozen=True)
class Event:
    """What the search tells whoever shows progress."""

    #: data | baseline (progress: a BaselineStep) | baseline-done (its record) | budget |
    #: trial-start | training | trial-done | note | warning
    kind: str
    message: str = ""
    trial: FrozenTrial | None = None
    progress: Any = None


EventFn = Callable[[Event], None]

"""The multi-objective search: maximise accuracy, minimise latency, MACs or params.

One Optuna study; each trial samples an architecture from the space, prices it
analytically (MACs, params) and in time (a lookup table, or one measurement on this
device), refuses it before training when it breaks a hard budget (reported to the
sampler through Optuna's constraints), reuses the accuracy of an architecture already
trained at the same fidelity, and otherwise trains it with the study's recipe. The four
baselines are trained once per study with the same data, recipe and latency protocol.

With ``accuracy="halving"`` a trial trains at one rung of successive halving (see
``results/_halving.py``): new candidates at the lowest budget, promotions (enqueued
trials) at the higher ones, up to the study's recipe. With ``accuracy="supernet"`` a
candidate is not trained: a weight-sharing supernet trained once over the same space
scores it (``estimators.Supernet.score``); baselines that are points of the space are
scored the same way, the others are trained standalone with the study's recipe and
marked so.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, Trial, TrialState

from estimators import (
    ImageData,
    LatencyConfig,
    LatencyTable,
    Recipe,
    Supernet,
    TrainingDiverged,
    count,
    load_data,
    load_supernet,
    load_table,
    measure,
    measure_many,
    predict,
    resolve_device,
    train_and_evaluate,
)
from results._halving import (
    Rung,
    candidates_done,
    due_promotions,
    fidelity_label,
    fidelity_recipe,
    halving_rungs,
)
from results._options import AccuracyMode, Sampler, SearchTarget
from results._study import (
    StudyError,
    StudyMeta,
    check_meta,
    end_worker,
    fail_dead_local_trials,
    live_workers,
    load_study,
    open_storage,
    register_worker,
    worker_alive,
    worker_id,
)
from search_space import (
    MAX_RESOLUTION,
    ArchSpec,
    NasctlError,
    SearchSpace,
    SpaceError,
    baseline_names,
    check_threads,
    format_arch,
    get_baseline,
    load_space,
    space_source,
)

__all__ = [
    "AccuracyMode",
    "Sampler",
    "SearchConfig",
    "SearchError",
    "SearchTarget",
    "fidelity_recipe",
    "parse_max_latency",
    "run_search",
]


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


def worker_seed(seed: int, worker: str) -> int:
    """The sampler seed of a worker that joins a study other workers are already on:
    derived from --seed and its worker id (host:pid), so no two sample alike."""
    digest = hashlib.sha256(f"{seed}:{worker}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Runner:
    #: Seconds between looks at the storage while waiting for another worker.
    poll_s = 1.0
    #: Seconds a worker lets other workers' baseline claims land before reading them.
    settle_s = 1.0

    def __init__(self, config: SearchConfig, out: Path, storage: str | None, on_event: EventFn):
        self.config = config
        self.seed = config.seed
        self.on_event = on_event
        self.out = out
        self.space: SearchSpace = load_space(config.space_path)
        self.space_text = space_source(config.space_path)[0]
        self.table: LatencyTable | None = load_table(config.lut_path) if config.lut_path else None
        self.device = resolve_device(config.device, config.precision)
        self.supernet: Supernet | None = None
        self.supernet_digest = ""
        #: The split of the data: --seed, or the supernet's own (it never scores a
        #: candidate on images it was trained on).
        self.data_seed = config.seed
        if config.supernet_path is not None:
            self.load_supernet(config.supernet_path)
        self._data: dict[int, ImageData] = {}
        #: Baseline name -> its latency from the interleaved measurement (timed once).
        self._baseline_latency: dict[str, dict[str, float]] = {}
        self.num_classes = self.data_at(max(self.space.resolutions)).num_classes
        if self.supernet is not None:
            self.supernet.check_data(self.data_at(max(self.space.resolutions)))
        if self.table is not None and self.table.num_classes != self.num_classes:
            raise SearchError(
                f"the latency table was built for {self.table.num_classes} classes, the data "
                f"has {self.num_classes}; build one with --num-classes {self.num_classes}"
            )
        self.check_budgets_are_reachable()
        train_size = len(self.data_at(max(self.space.resolutions)).train_y)
        #: The study's recipe: every candidate's in train mode, the top rung's in halving.
        self.recipe = fidelity_recipe(config.recipe, config.images_per_candidate, train_size)
        self.fidelity = fidelity_label(config.fidelity, self.recipe)
        self.rungs = self.make_rungs(train_size)
        # Last: every check above refuses bad input before a study or journal exists.
        self.storage = open_storage(storage, out, config.study)

    def load_supernet(self, path: Path) -> None:
        supernet = load_supernet(path)
        supernet.check_space(self.space)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        self.device.place(supernet)
        self.supernet, self.supernet_digest = supernet, digest.hexdigest()[:16]
        if supernet.trained_on is not None:
            self.data_seed = supernet.trained_on.seed

    def make_rungs(self, train_size: int) -> list[Rung]:
        c = self.config
        if c.accuracy is AccuracyMode.supernet:
            return [Rung(0, 1.0, self.recipe, f"supernet:{self.supernet_digest}", 0)]
        if c.accuracy is not AccuracyMode.halving:
            r = self.recipe
            seen = r.epochs * min(r.train_images or train_size, train_size)
            return [Rung(0, 1.0, r, self.fidelity, seen)]
        rungs = halving_rungs(
            c.recipe, c.images_per_candidate, train_size, c.eta, c.lowest_fidelity, c.fidelity
        )
        if len(rungs) < 2:
            raise SearchError(
                f"min_fidelity {c.lowest_fidelity:g} with eta {c.eta} leaves one distinct "
                f"training budget on this data ({rungs[0].label}); lower --min-fidelity or "
                "raise --images"
            )
        if rungs[0].images < self.recipe.batch_size:
            raise SearchError(
                f"the lowest rung trains on {rungs[0].images} images, less than one batch of "
                f"{self.recipe.batch_size}: raise --min-fidelity or --images, or lower "
                "--batch-size"
            )
        return rungs

    @property
    def halving(self) -> bool:
        return self.config.accuracy is AccuracyMode.halving

    # --- data ----------------------------------------------------------------------

    def data_at(self, resolution: int) -> ImageData:
        if resolution not in self._data:

            def progress(stage: str, done: int, total: int | None) -> None:
                what = (
                    "downloading CIFAR-10 (bytes)"
                    if stage == "download"
                    else f"decoding images at {resolution}x{resolution}"
                )
                of = f"/{total:,}" if total else ""
                self.on_event(Event("data", f"{what}: {done:,}{of}"))

            self._data[resolution] = load_data(
                self.config.data,
                resolution,
                seed=self.data_seed,
                mode=self.config.data_mode,
                on_progress=progress,
            )
        return self._data[resolution]

    # --- costs ---------------------------------------------------------------------

    def latency(self, spec: ArchSpec) -> dict[str, float]:
        if self.table is not None:
            ms = predict(spec, self.table) / 1000
            return {"latency_ms": ms, "latency_p10_ms": ms, "latency_p90_ms": ms}
        result = measure(spec, self.config.latency)
        return {
            "latency_ms": result.median_us / 1000,
            "latency_p10_ms": result.p10_us / 1000,
            "latency_p90_ms": result.p90_us / 1000,
            "latency_iqr_ratio": result.iqr_ratio,
        }

    @property
    def needs_latency(self) -> bool:
        return (
            self.config.target is SearchTarget.latency
            or self.config.max_latency_ms is not None
            or self.config.max_latency_under_fastest_pct is not None
            or self.table is not None
        )

    def costs(self, spec: ArchSpec, timed: dict[str, float] | None = None) -> dict[str, float]:
        """MACs, params and latency (``timed`` when it was measured already)."""
        report = count(spec)
        values: dict[str, float] = {"macs": report.macs, "params": report.params}
        values["mmacs"] = report.macs / 1e6
        values["mparams"] = report.params / 1e6
        # Check the cheap budgets first: an infeasible candidate is never timed either.
        if timed is not None:
            values.update(timed)
        elif self.needs_latency and not self.violations(values, latency=False):
            values.update(self.latency(spec))
        return values

    @property
    def baseline_resolution(self) -> int:
        return self.config.baseline_resolution or max(self.space.resolutions)

    def time_baselines(self, names: list[str]) -> dict[str, dict[str, float]]:
        """The baselines' latencies at their resolution: from the lookup table, or measured
        together in interleaved rounds with MobileNetV2 timed in every round
        (``BASELINE_LATENCY``, on the search's latency device and threads); each is timed
        once per process."""
        res = self.baseline_resolution
        specs = {n: get_baseline(n, 1.0, res, self.num_classes) for n in names}
        if self.table is not None:
            return {n: self.latency(s) for n, s in specs.items()}
        missing = [n for n in names if n not in self._baseline_latency]
        if missing:
            c = self.config.latency
            protocol = replace(BASELINE_LATENCY, device=c.device, threads=c.threads)
            self.on_event(
                Event(
                    "baseline",
                    f"timing {len(missing)} baseline(s) at {res}x{res}: {protocol.rounds} "
                    f"interleaved rounds, {BASELINE_REFERENCE} timed in every round",
                )
            )
            reference = get_baseline(BASELINE_REFERENCE, 1.0, res, self.num_classes)
            timed = measure_many(
                [specs[n] for n in missing], protocol, reference=reference, names=missing
            )
            for name, r in zip(missing, timed, strict=True):
                self._baseline_latency[name] = {
                    "latency_ms": r.median_us / 1000,
                    "latency_p10_ms": r.p10_us / 1000,
                    "latency_p90_ms": r.p90_us / 1000,
                    "latency_iqr_ratio": r.iqr_ratio,
                    "ratio_to_v2": float(r.ratio_to_reference or 0.0),
                }
        return {n: self._baseline_latency[n] for n in names}

    def resolve_latency_budget(self, study: optuna.Study) -> None:
        """``max_latency_under_fastest_pct``: the budget is that many percent under the
        fastest baseline. Decided once per study and kept in its meta (``nasctl`` ->
        ``latency_budget``, and ``budgets.latency_ms``): a resumed search or another
        worker uses the same figure rather than timing again. Of several workers starting
        together one times the baselines (study attribute ``latency-budget-claim``, as
        baselines are claimed); the others wait for its figure."""
        pct = self.config.max_latency_under_fastest_pct
        if pct is None:
            return
        me = worker_id()
        while True:
            meta = dict(study.user_attrs.get("nasctl", {}))
            chosen = meta.get("latency_budget")
            if chosen is not None and chosen.get("percent_under") == pct:
                break
            claim = study.user_attrs.get("latency-budget-claim")
            if claim not in (None, me) and claim in live_workers(study):
                # An event per look: the view can stop here on Ctrl-C.
                self.on_event(Event("baseline", f"waiting for {claim} to time the baselines"))
                time.sleep(self.poll_s)
                continue
            if claim != me:
                study.set_user_attr("latency-budget-claim", me)
                if len(live_workers(study)) > 1:
                    time.sleep(self.settle_s)  # a claim written at the same moment loses now
                continue
            timed = self.time_baselines(list(baseline_names()))
            fastest = min(timed, key=lambda n: timed[n]["latency_ms"])
            ms = timed[fastest]["latency_ms"] * (1 - pct / 100)
            res = self.baseline_resolution
            chosen = {
                "rule": "fastest-baseline" + (f"-{pct:g}%" if pct else ""),
                "percent_under": pct,
                "fastest": fastest,
                "fastest_ms": timed[fastest]["latency_ms"],
                "latency_ms": ms,
                "resolution": res,
                "source": "lut" if self.table is not None else "measured",
                "baselines_ms": {n: timed[n]["latency_ms"] for n in sorted(timed)},
            }
            meta["latency_budget"] = chosen
            meta["budgets"] = {**meta.get("budgets", {}), "latency_ms": ms}
            study.set_user_attr("nasctl", meta)
            break
        self.config = replace(
            self.config,
            max_latency_ms=float(chosen["latency_ms"]),
            max_latency_under_fastest_pct=None,
        )
        under = f" - {pct:g}%" if pct else ""
        self.on_event(
            Event(
                "budget",
                f"latency budget {chosen['latency_ms']:.3f} ms = fastest baseline "
                f"{chosen['fastest']} {chosen['fastest_ms']:.3f} ms{under} (at "
                f"{chosen['resolution']}x{chosen['resolution']}, {chosen['source']})",
            )
        )
        self.check_latency_reachable()

    def violations(self, values: dict[str, float], latency: bool = True) -> dict[str, float]:
        """Budget -> how far over it (> 0) the candidate is."""
        over = {}
        for key, limit in self.config.budgets.items():
            if limit is None or (key == "latency_ms" and not latency) or key not in values:
                continue
            if values[key] > limit:
                over[key] = values[key] - limit
        return over

    def check_budgets_are_reachable(self) -> None:
        """Budgets no architecture of the space can meet are refused up front (the
        smallest architecture is also timed once when there is a latency budget)."""
        report = count(self.smallest_spec())
        for key, value, unit in (
            ("max_mmacs", report.macs / 1e6, "M MACs"),
            ("max_mparams", report.params / 1e6, "M params"),
        ):
            limit = getattr(self.config, key)
            if limit is not None and value > limit:
                flag = key.replace("max_m", "--max-").replace("macs", "flops")
                raise SearchError(
                    f"{flag} {limit:g} cannot be met: the smallest architecture of the space "
                    f"has {value:.3f}{unit}"
                )
        self.check_latency_reachable()

    def smallest_spec(self) -> ArchSpec:
        return self.space.make_spec(
            min(self.space.widths),
            min(self.space.resolutions),
            [
                [min(s.block_choices, key=lambda c: (c.expansion, c.kernel, c.se))] * min(s.depth)
                for s in self.space.stages
            ],
            self.num_classes,
        )

    def check_latency_reachable(self) -> None:
        limit = self.config.max_latency_ms
        if limit is not None:
            # Measured latency is noisy: refuse only a budget under half of what the
            # smallest architecture takes; the lookup table is exact, so no margin there.
            ms = self.latency(self.smallest_spec())["latency_ms"]
            if ms > (limit if self.table is not None else 2 * limit):
                how = "is predicted at" if self.table is not None else "measures"
                raise SearchError(
                    f"--max-latency {limit:g} cannot be met: the smallest architecture of the "
                    f"space {how} {ms:.3f} ms"
                )

    # --- the study -----------------------------------------------------------------

    def meta(self) -> StudyMeta:
        c = self.config
        return StudyMeta(
            target=c.target.value,
            space_sha=StudyMeta.space_digest(self.space_text),
            space_text=self.space_text,
            data=c.data,
            data_id=self.data_at(max(self.space.resolutions)).identity,
            num_classes=self.num_classes,
            fidelity=self.study_fidelity,
            recipe=self.recipe.to_dict(),
            latency={
                "mode": "lut" if self.table else "measured",
                **c.latency.to_dict(),
                "host": socket.gethostname(),
            },
            budgets=c.budgets,
            seed=c.seed,
        )

    @property
    def study_fidelity(self) -> str:
        """What a resumed study must match: the recipe label, every rung's, or the
        supernet file's digest."""
        if self.halving:
            return f"halving:eta{self.config.eta}:" + ",".join(r.label for r in self.rungs)
        return self.rungs[0].label

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        # Budgets reach NSGA-II and TPE through Trial.set_constraint (Optuna 5).
        c = self.config
        if c.sampler is Sampler.nsga2:
            return optuna.samplers.NSGAIISampler(population_size=c.population, seed=seed)
        if c.sampler is Sampler.tpe:
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        return optuna.samplers.RandomSampler(seed=seed)

    def threads(self, study: optuna.Study) -> int:
        """--threads, else this machine's cores split evenly between its live workers
        (asked again at every trial, as workers come and go)."""
        if self.config.threads is not None:
            return self.config.threads
        return max(1, _cores() // max(1, len(live_workers(study, local_only=True))))

    def open(self) -> optuna.Study:
        try:  # load first: create_study on an existing study appends to the journal
            study = optuna.load_study(
                study_name=self.config.study,
                storage=self.storage,
                sampler=self.sampler(self.config.seed),
            )
        except KeyError:
            study = optuna.create_study(
                study_name=self.config.study,
                storage=self.storage,
                directions=["maximize", "minimize"],
                sampler=self.sampler(self.config.seed),
                load_if_exists=True,
            )
        if study.directions != [
            optuna.study.StudyDirection.MAXIMIZE,
            optuna.study.StudyDirection.MINIMIZE,
        ]:
            raise StudyError(f"study {study.study_name!r} was not created by nasctl search")
        check_meta(study, self.meta())
        if study.metric_names is None:  # the dashboard and trials_dataframe() name them
            with warnings.catch_warnings():  # "set_metric_names is experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(["accuracy", TARGET_UNITS[self.config.target]])
        self.warn_mixed_latency(study)
        # Register first, then look: of two workers starting together, the later one
        # always sees the earlier, so at most one of them keeps --seed.
        register_worker(study, {"seed": self.config.seed, "device": self.device.label})
        others = [w for w in live_workers(study) if w != worker_id()]
        if others:
            self.seed = worker_seed(self.config.seed, worker_id())
            register_worker(study, {"seed": self.seed, "device": self.device.label})
            study.sampler = self.sampler(self.seed)
            self.on_event(
                Event(
                    "note",
                    f"{len(others)} other worker(s) on this study: sampler seed {self.seed} "
                    f"(derived from --seed {self.config.seed} and worker {worker_id()})",
                )
            )
        for dead in fail_dead_local_trials(study, self.storage):
            self.on_event(
                Event(
                    "note",
                    f"trial {dead.number} was left running by a dead "
                    "worker: marked failed, its candidate is retried",
                )
            )
        self.retry_interrupted(study)
        return study

    def warn_mixed_latency(self, study: optuna.Study) -> None:
        """One note when this worker would time candidates on another host or latency
        device than the study's first worker did: measured latencies from two machines
        are not comparable, and the front would mix them."""
        if self.table is not None:
            return
        stored = study.user_attrs.get("nasctl", {}).get("latency", {})
        if stored.get("mode") != "measured":
            return
        mine = self.meta().latency
        host, device = stored.get("host"), stored.get("device", "cpu")
        if host in (None, mine["host"]) and device == mine["device"]:
            return
        where = f"{host} ({device})" if host else f"latency device {device}"
        self.on_event(
            Event(
                "warning",
                f"this study's latencies were measured on {where}, this worker "
                f"measures on {mine['host']} ({mine['device']}): the study would mix measured "
                "latencies from different hardware; use --latency lut for workers on "
                "different machines",
            )
        )

    def retry_interrupted(self, study: optuna.Study) -> None:
        """Queue again the candidates of trials that a crash or Ctrl-C cut short."""
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            # An enqueued trial (a halving promotion, a retry) cut before it sampled has
            # no params yet, but its fixed ones.
            params = t.params or t.system_attrs.get("fixed_params")
            # No reason: failed by Optuna's heartbeat check (PostgreSQL), a worker that
            # stopped beating on another machine.
            if (
                t.state is TrialState.FAIL
                and t.user_attrs.get("fail_reason", "worker died") in ("worker died", "interrupted")
                and t.number not in retried
                and params
            ):
                # A halving promotion is retried at its rung, as the same promotion.
                attrs: dict[str, Any] = {"retry_of": t.number}
                attrs.update(
                    (k, t.user_attrs[k]) for k in ("rung", "promoted_from") if k in t.user_attrs
                )
                study.enqueue_trial(params, user_attrs=attrs)

    # --- halving -------------------------------------------------------------------

    def enqueue_promotions(self, study: optuna.Study) -> None:
        """Enqueue the promotions the finished trials call for. Each is claimed first
        (study attribute ``promotion-claim:<trial>`` = worker id, as baselines are), so
        that of several workers one enqueues it; should two still enqueue it, the later
        trial waits for the earlier and reuses its accuracy (``wait_for_twin``)."""
        if not self.halving:
            return
        due = due_promotions(study.get_trials(deepcopy=False), len(self.rungs), self.config.eta)
        if not due:
            return
        me = worker_id()
        attrs = study.user_attrs
        live = set(live_workers(study))
        mine = []
        for p in due:
            claim = attrs.get(f"promotion-claim:{p.source}")
            if claim not in (None, me) and claim in live:
                continue
            study.set_user_attr(f"promotion-claim:{p.source}", me)
            mine.append(p)
        if mine and len(live) > 1:
            time.sleep(self.settle_s)  # a claim written at the same moment wins or loses now
        attrs = study.user_attrs
        now = due_promotions(study.get_trials(deepcopy=False), len(self.rungs), self.config.eta)
        still_due = {(p.arch, p.rung) for p in now}
        for p in mine:
            if attrs.get(f"promotion-claim:{p.source}") != me or (p.arch, p.rung) not in still_due:
                continue
            study.enqueue_trial(
                p.params, user_attrs={"rung": p.rung, "promoted_from": p.source, "arch": p.arch}
            )

    def wants_more(self, study: optuna.Study) -> bool:
        """Whether the study needs more trials: ``trials`` finished ones; in halving,
        ``trials`` new candidates and then every promotion they call for."""
        trials = study.get_trials(deepcopy=False)
        if not self.halving:
            return sum(t.state is TrialState.COMPLETE for t in trials) < self.config.trials
        waiting = any(t.state is TrialState.WAITING for t in trials)
        return waiting or candidates_done(trials) < self.config.trials

    def after_trial(self, study: optuna.Study, _: FrozenTrial) -> None:
        """Optuna callback: enqueue what is due, stop when nothing more is wanted."""
        self.enqueue_promotions(study)
        if not self.wants_more(study):
            study.stop()

    # --- baselines -----------------------------------------------------------------

    def evaluate_baselines(self, study: optuna.Study) -> None:
        """Train (or score) the baselines the study lacks. Each is claimed first (study
        attribute ``baseline-claim:<name>`` = worker id) so that of several workers one
        trains it; a claim by a live worker is left to it."""
        resolution = self.baseline_resolution
        me = worker_id()
        attrs = study.user_attrs
        live = set(live_workers(study))
        mine = []
        for name in baseline_names():
            claim = attrs.get(f"baseline-claim:{name}")
            if f"baseline:{name}" in attrs or (claim not in (None, me) and claim in live):
                continue
            study.set_user_attr(f"baseline-claim:{name}", me)
            mine.append(name)
        if mine and len(live_workers(study)) > 1:
            time.sleep(self.settle_s)  # a claim written at the same moment wins or loses now
        attrs = study.user_attrs
        todo = []
        for name in mine:
            if f"baseline:{name}" in attrs:
                continue
            if attrs.get(f"baseline-claim:{name}") != me:
                self.on_event(Event("note", f"baseline {name} is trained by another worker"))
                continue
            todo.append(name)
        # Timed together first, so that their latencies come from one interleaved run.
        timed = self.time_baselines(todo) if todo and self.needs_latency else {}
        for i, name in enumerate(todo, 1):
            spec = get_baseline(name, 1.0, resolution, self.num_classes)
            step = BaselineStep(name, i, len(todo))
            started = time.perf_counter()
            record = self.evaluate(study, spec, name, step, timed.get(name))
            record.update(
                name=name,
                width=1.0,
                resolution=resolution,
                seconds=time.perf_counter() - started,
            )
            study.set_user_attr(f"baseline:{name}", record)
            self.on_event(Event("baseline-done", name, progress=replace(step, record=record)))

    def evaluate(
        self,
        study: optuna.Study,
        spec: ArchSpec,
        progress_label: str,
        step: BaselineStep | None = None,
        timed: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """A baseline's record: scored like the candidates, at the study's recipe (the
        top rung of halving) or by the supernet. A baseline that is not a point of the
        space cannot be scored by the supernet: it is trained standalone with the study's
        recipe, and its record says so (``estimator`` "train")."""
        record: dict[str, Any] = {"arch": format_arch(spec), **self.costs(spec, timed)}
        rung = self.rungs[-1]
        where = f"{spec.resolution}x{spec.resolution}"
        if self.supernet is not None:
            try:
                self.space.params_of(spec)
            except SpaceError:
                rung = Rung(0, 1.0, self.recipe, self.fidelity, 0)
                record["note"] = "not a point of the space: trained standalone"
        scored = rung.label.startswith("supernet:")
        what = "scoring" if scored else "training"
        of = f" ({step.index}/{step.total})" if step is not None else ""
        self.on_event(
            Event("baseline", f"{what} baseline {progress_label}{of} at {where}", progress=step)
        )
        record.update(self.accuracy_of(study, spec, rung, progress_label))
        record.update(fidelity=rung.label, estimator="supernet" if scored else "train")
        return record

    def accuracy_of(
        self, study: optuna.Study, spec: ArchSpec, rung: Rung, label: str
    ) -> dict[str, Any]:
        """Train ``spec`` with the rung's recipe, or score it with the supernet when the
        rung is the supernet's: what to record (``accuracy`` first)."""
        threads = self.threads(study)
        if self.supernet is not None and rung.label.startswith("supernet:"):
            started = time.perf_counter()
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                top1 = self.supernet.score(
                    spec,
                    self.data_at(spec.resolution),
                    recal_batches=self.config.recal_batches,
                    seed=self.config.seed,
                    device=self.device,
                )
            finally:
                torch.set_num_threads(previous)
            return {
                "accuracy": top1,
                "score_seconds": time.perf_counter() - started,
                "device": self.device.label,
            }
        result = train_and_evaluate(
            spec,
            self.data_at(spec.resolution),
            rung.recipe,
            seed=self.config.seed,
            threads=threads,
            on_progress=lambda p: self.on_event(Event("training", label, progress=p)),
            device=self.device,
        )
        return {
            "accuracy": result.top1,
            "top5": result.top5,
            "train_seconds": result.train_seconds,
            "images_per_second": result.images_per_second,
            "device": result.device,
        }

    # --- one trial -----------------------------------------------------------------

    def objective(self, trial: Trial) -> tuple[float, float]:
        try:
            return self._objective(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise

    def _objective(self, trial: Trial) -> tuple[float, float]:
        started = time.perf_counter()
        trial.set_user_attr("worker", worker_id())
        # An enqueued promotion carries its rung and the trial it was promoted from.
        given = trial.user_attrs
        rung = self.rungs[int(given.get("rung", 0))]
        source = given.get("promoted_from")
        spec = self.space.sample(trial, self.num_classes)
        arch = format_arch(spec)
        # Early, so that another worker sampling the same architecture now waits for it.
        trial.set_user_attr("arch", arch)
        trial.set_user_attr("fidelity", rung.label)
        if self.halving:
            trial.set_user_attr("rung", rung.index)
        what = f"rung {rung.index}, promoted from trial {source}: " if source is not None else ""
        self.on_event(Event("trial-start", f"trial {trial.number}: {what}{arch}"))
        parent = None if source is None else trial.study.get_trials(deepcopy=False)[int(source)]
        # A promotion keeps the costs measured at the lower rung: one latency per arch.
        values = self.costs(spec) if parent is None else _cost_attrs(parent.user_attrs)
        over = self.violations(values)
        unit = TARGET_UNITS[self.config.target]
        attrs: dict[str, Any] = {
            "spec": spec.to_json(indent=None),
            "feasible": not over,
            **values,
        }
        if over:
            attrs["violations"] = over
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for key, limit in self.config.budgets.items():
            if limit is not None:
                # Optuna's convention: <= 0 is satisfied. A latency never measured
                # (the candidate already broke a cheaper budget) counts as neutral.
                trial.set_constraint(key, values[key] - limit if key in values else 0.0)
        trial.set_user_attr("overhead_s", time.perf_counter() - started)
        if over:
            # Never trained: accuracy 0 and the constraints mark it infeasible.
            return 0.0, float(values.get(unit, math.inf))
        lower = [] if parent is None else list(parent.user_attrs.get("rung_accuracy", []))
        previous = self.already_trained(trial.study, arch, rung.label) or self.wait_for_twin(
            trial, arch, rung.label
        )
        if previous is not None:
            trial.set_user_attr("accuracy", previous.user_attrs["accuracy"])
            trial.set_user_attr("reused_from", previous.number)
            if self.halving:
                trial.set_user_attr(
                    "rung_accuracy",
                    previous.user_attrs.get("rung_accuracy", [previous.user_attrs["accuracy"]]),
                )
            return previous.user_attrs["accuracy"], float(values[unit])
        if self.supernet is not None:
            self.on_event(Event("trial-start", f"trial {trial.number}: scoring {arch}"))
        try:
            measured = self.accuracy_of(trial.study, spec, rung, f"trial {trial.number}")
        except TrainingDiverged as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        for key, value in measured.items():
            trial.set_user_attr(key, value)
        if self.halving:
            # The candidate's accuracy at every rung it reached, lowest first.
            trial.set_user_attr("rung_accuracy", [*lower, measured["accuracy"]])
        return measured["accuracy"], float(values[unit])

    def wait_for_twin(self, trial: Trial, arch: str, fidelity: str) -> FrozenTrial | None:
        """When a running trial with a smaller number (another worker's) has the same
        architecture and fidelity, wait until it ends and return it if it completed; of
        two workers that sampled alike at the same moment, the earlier trial trains."""
        study = trial.study
        while True:
            twins = [
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number < trial.number
                and t.user_attrs.get("arch") == arch
                and t.user_attrs.get("fidelity") == fidelity
                and worker_alive(str(t.user_attrs.get("worker", "")))
            ]
            if not twins:
                return self.already_trained(study, arch, fidelity)
            self.on_event(
                Event(
                    "trial-start",
                    f"trial {trial.number}: waiting for trial {twins[0].number} "
                    "(same architecture, another worker)",
                )
            )
            time.sleep(self.poll_s)
            if isinstance(study._storage, optuna.storages.RDBStorage):
                optuna.storages.fail_stale_trials(study)  # a twin whose worker stopped

    def already_trained(self, study: optuna.Study, arch: str, fidelity: str) -> FrozenTrial | None:
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            attrs = t.user_attrs
            if (
                attrs.get("arch") == arch
                and attrs.get("fidelity") == fidelity
                and attrs.get("accuracy") is not None
                and attrs.get("reused_from") is None
                and attrs.get("feasible")
            ):
                return t
        return None


#: What ``costs`` records: copied to a promotion rather than measured again.
_COST_KEYS = (
    "macs",
    "params",
    "mmacs",
    "mparams",
    "latency_ms",
    "latency_p10_ms",
    "latency_p90_ms",
    "latency_iqr_ratio",
)


def _cost_attrs(attrs: dict[str, Any]) -> dict[str, float]:
    return {k: float(attrs[k]) for k in _COST_KEYS if k in attrs}


def run_search(
    config: SearchConfig,
    out: Path,
    storage: str | None = None,
    on_event: EventFn | None = None,
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] | None = None,
) -> optuna.Study:
    """Run (or resume) the study until it has ``config.trials`` finished trials or the
    timeout passes; KeyboardInterrupt propagates after the current trial is recorded."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runner = _Runner(config, out, storage, on_event or (lambda e: None))
    where = storage or str(out / f"{config.study}.journal")
    try:
        study = runner.open()
        try:
            runner.resolve_latency_budget(study)
            if config.baselines:
                runner.evaluate_baselines(study)
            runner.enqueue_promotions(study)  # a resumed halving study: what is due now
            if runner.wants_more(study):
                study.optimize(
                    runner.objective,
                    timeout=config.timeout,
                    catch=(TrainingDiverged,),
                    callbacks=[runner.after_trial, *(callbacks or [])],
                )
        finally:
            with contextlib.suppress(OSError):  # a storage that cannot be written: see below
                end_worker(study)
    except OSError as exc:
        # A full disk or a storage that turned read-only: what is stored stays as it was.
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise StudyError(f"cannot write the study to {where!r}: {reason}") from None
    return study


def open_existing(name: str, out: Path, storage: str | None) -> optuna.Study:
    """A study for `nasctl results` (finished or running)."""
    if storage is None and not (out / f"{name}.journal").exists():
        raise StudyError(
            f"no study {name!r} under {str(out)!r} (looked for {name}.journal); pass --runs "
            "or --storage"
        )
    # Reading creates nothing: a journal or SQLite file that is not there holds no study.
    local = storage.removeprefix("sqlite:///") if storage else ""
    sqlite_file = bool(storage) and storage != local and local != ":memory:"
    if (
        (sqlite_file or local.endswith(".journal"))
        and "://" not in local
        and not Path(local).exists()
    ):
        raise StudyError(f"no study {name!r}: storage file {local!r} does not exist")
    return load_study(name, open_storage(storage, out, name))


def baselines_of(study: optuna.Study) -> list[dict[str, Any]]:
    return [v for k, v in sorted(study.user_attrs.items()) if k.startswith("baseline:")]

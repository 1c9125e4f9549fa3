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

This module holds the runner (what it loads once, how it trains or scores, its study) and
``run_search``; the config is ``_search_config``, costs and budgets ``_pricing``, claims
between workers ``_claims``, the baselines ``_baselines``, one trial ``_trial``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from estimators import (
    ImageData,
    LatencyTable,
    Supernet,
    TrainingDiverged,
    load_data,
    load_supernet,
    load_table,
    resolve_device,
    train_and_evaluate,
)
from results._baselines import evaluate_baselines
from results._claims import cores, worker_seed
from results._halving import (
    Rung,
    candidates_done,
    enqueue_promotions,
    fidelity_label,
    fidelity_recipe,
    halving_rungs,
)
from results._options import AccuracyMode, Sampler
from results._pricing import Pricing
from results._search_config import (
    TARGET_UNITS,
    Event,
    EventFn,
    SearchConfig,
    SearchError,
)
from results._study import (
    StudyError,
    StudyMeta,
    check_meta,
    end_worker,
    fail_dead_local_trials,
    live_workers,
    open_storage,
    register_worker,
    worker_id,
)
from results._trial import objective, quiet_interrupted_trials
from search_space import ArchSpec, SearchSpace, load_space, space_source

__all__ = ["run_search"]


class _Runner:
    """One worker's search: what it loads once (space, data, lookup table, supernet, the
    rungs), how it trains or scores an architecture, and its study (opened, joined by
    other workers, resumed). Costs and budgets are its ``pricing``'s; the baselines, one
    trial and the promotions live in their own modules."""

    def __init__(self, config: SearchConfig, out: Path, storage: str | None, on_event: EventFn):
        #: The settings as given; ``config`` is the pricing's (with a decided budget).
        self._given = config
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
        self.num_classes = self.data_at(max(self.space.resolutions)).num_classes
        if self.supernet is not None:
            self.supernet.check_data(self.data_at(max(self.space.resolutions)))
        if self.table is not None and self.table.num_classes != self.num_classes:
            raise SearchError(
                f"the latency table was built for {self.table.num_classes} classes, the data "
                f"has {self.num_classes}; build one with --num-classes {self.num_classes}"
            )
        self.pricing = Pricing(config, self.space, self.table, self.num_classes, on_event)
        self.pricing.check_budgets_are_reachable()
        train_size = len(self.data_at(max(self.space.resolutions)).train_y)
        #: The study's recipe: every candidate's in train mode, the top rung's in halving.
        self.recipe = fidelity_recipe(config.recipe, config.images_per_candidate, train_size)
        self.fidelity = fidelity_label(config.fidelity, self.recipe)
        self.rungs = self.make_rungs(train_size)
        # Last: every check above refuses bad input before a study or journal exists.
        self.storage = open_storage(storage, out, config.study)

    @property
    def config(self) -> SearchConfig:
        """The search's config; once a fastest-baseline budget is decided, with its figure
        as ``max_latency_ms`` (``Pricing.resolve_latency_budget``)."""
        return self.pricing.config

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
                self._given.data,
                resolution,
                seed=self.data_seed,
                mode=self._given.data_mode,
                on_progress=progress,
            )
        return self._data[resolution]

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
        return max(1, cores() // max(1, len(live_workers(study, local_only=True))))

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
        """Halving: enqueue the promotions due now (``results._halving``)."""
        if self.halving:
            enqueue_promotions(study, len(self.rungs), self.config.eta)

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
            runner.pricing.resolve_latency_budget(study)
            if config.baselines:
                evaluate_baselines(runner, study)
            runner.enqueue_promotions(study)  # a resumed halving study: what is due now
            if runner.wants_more(study):
                with quiet_interrupted_trials():
                    study.optimize(
                        functools.partial(objective, runner),
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

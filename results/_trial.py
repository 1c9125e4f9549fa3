"""One trial of the search: sample an architecture, price it, refuse it when it breaks a
budget, reuse the accuracy of the same architecture trained at the same fidelity (waiting
for another worker training it now), and otherwise train or score it."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from estimators import TrainingDiverged
from results import _claims
from results._search_config import TARGET_UNITS, Event
from results._study import worker_alive, worker_id
from search_space import format_arch

if TYPE_CHECKING:
    from results._search import _Runner


def objective(run: _Runner, trial: Trial) -> tuple[float, float]:
    try:
        return _objective(run, trial)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", "interrupted")
        raise


class _InterruptedTrialRecords(logging.Filter):
    """Drops Optuna's two warnings about a trial that Ctrl-C cut short: the first carries
    the whole traceback of the KeyboardInterrupt, the second its value (None). The trial is
    recorded failed with fail_reason "interrupted", and the caller says so in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.cut: str | None = None  # "Trial N failed" of the interrupted trial

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.cut = " ".join(message.split()[:3])
            return False
        return not (self.cut is not None and message.startswith(self.cut))


@contextlib.contextmanager
def quiet_interrupted_trials() -> Iterator[None]:
    """Within: a trial that Ctrl-C cuts short is not logged by Optuna with a traceback."""
    logger = logging.getLogger("optuna")
    quiet = _InterruptedTrialRecords()
    for handler in logger.handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in logger.handlers:
            handler.removeFilter(quiet)


def _objective(run: _Runner, trial: Trial) -> tuple[float, float]:
    started = time.perf_counter()
    trial.set_user_attr("worker", worker_id())
    # An enqueued promotion carries its rung and the trial it was promoted from.
    given = trial.user_attrs
    rung = run.rungs[int(given.get("rung", 0))]
    source = given.get("promoted_from")
    spec = run.space.sample(trial, run.num_classes)
    arch = format_arch(spec)
    # Early, so that another worker sampling the same architecture now waits for it.
    trial.set_user_attr("arch", arch)
    trial.set_user_attr("fidelity", rung.label)
    if run.halving:
        trial.set_user_attr("rung", rung.index)
    what = f"rung {rung.index}, promoted from trial {source}: " if source is not None else ""
    run.on_event(Event("trial-start", f"trial {trial.number}: {what}{arch}"))
    parent = None if source is None else trial.study.get_trials(deepcopy=False)[int(source)]
    # A promotion keeps the costs measured at the lower rung: one latency per arch.
    values = run.pricing.costs(spec) if parent is None else _cost_attrs(parent.user_attrs)
    over = run.pricing.violations(values)
    unit = TARGET_UNITS[run.config.target]
    attrs: dict[str, Any] = {
        "spec": spec.to_json(indent=None),
        "feasible": not over,
        **values,
    }
    if over:
        attrs["violations"] = over
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for key, limit in run.config.budgets.items():
        if limit is not None:
            # Optuna's convention: <= 0 is satisfied. A latency never measured
            # (the candidate already broke a cheaper budget) counts as neutral.
            trial.set_constraint(key, values[key] - limit if key in values else 0.0)
    trial.set_user_attr("overhead_s", time.perf_counter() - started)
    if over:
        # Never trained: accuracy 0 and the constraints mark it infeasible.
        return 0.0, float(values.get(unit, math.inf))
    lower = [] if parent is None else list(parent.user_attrs.get("rung_accuracy", []))
    previous = already_trained(trial.study, arch, rung.label) or wait_for_twin(
        run, trial, arch, rung.label
    )
    if previous is not None:
        trial.set_user_attr("accuracy", previous.user_attrs["accuracy"])
        trial.set_user_attr("reused_from", previous.number)
        if run.halving:
            trial.set_user_attr(
                "rung_accuracy",
                previous.user_attrs.get("rung_accuracy", [previous.user_attrs["accuracy"]]),
            )
        return previous.user_attrs["accuracy"], float(values[unit])
    if run.supernet is not None:
        run.on_event(Event("trial-start", f"trial {trial.number}: scoring {arch}"))
    try:
        measured = run.accuracy_of(trial.study, spec, rung, f"trial {trial.number}")
    except TrainingDiverged as exc:
        trial.set_user_attr("fail_reason", str(exc))
        raise
    for key, value in measured.items():
        trial.set_user_attr(key, value)
    if run.halving:
        # The candidate's accuracy at every rung it reached, lowest first.
        trial.set_user_attr("rung_accuracy", [*lower, measured["accuracy"]])
    return measured["accuracy"], float(values[unit])


def wait_for_twin(run: _Runner, trial: Trial, arch: str, fidelity: str) -> FrozenTrial | None:
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
            return already_trained(study, arch, fidelity)
        run.on_event(
            Event(
                "trial-start",
                f"trial {trial.number}: waiting for trial {twins[0].number} "
                "(same architecture, another worker)",
            )
        )
        time.sleep(_claims.POLL_S)
        if isinstance(run.storage, optuna.storages.RDBStorage):
            with warnings.catch_warnings():  # "fail_stale_trials is experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a twin whose worker stopped


def already_trained(study: optuna.Study, arch: str, fidelity: str) -> FrozenTrial | None:
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

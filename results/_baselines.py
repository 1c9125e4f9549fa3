"""The four baselines of a search: trained (or scored) once per study, with the same data,
recipe and latency protocol as the candidates, and stored as study attributes
``baseline:<name>``. Of several workers, the one that claims a baseline trains it."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import optuna

from results._claims import claim
from results._halving import Rung
from results._search_config import BaselineStep, Event
from search_space import ArchSpec, SpaceError, baseline_names, format_arch, get_baseline

if TYPE_CHECKING:
    from results._search import _Runner


def evaluate_baselines(run: _Runner, study: optuna.Study) -> None:
    """Train (or score) the baselines the study lacks. Each is claimed first (study
    attribute ``baseline-claim:<name>``, see ``results._claims``) so that of several
    workers one trains it; a claim by a live worker is left to it."""
    pricing = run.pricing
    resolution = pricing.baseline_resolution
    attrs = study.user_attrs
    wanted = [n for n in baseline_names() if f"baseline:{n}" not in attrs]
    held = claim(study, [f"baseline-claim:{n}" for n in wanted])
    attrs = study.user_attrs
    todo = []
    for name in wanted:
        key = f"baseline-claim:{name}"
        if key not in held or f"baseline:{name}" in attrs:
            continue
        if not held[key]:
            run.on_event(Event("note", f"baseline {name} is trained by another worker"))
            continue
        todo.append(name)
    # Timed together first, so that their latencies come from one interleaved run.
    timed = pricing.time_baselines(todo) if todo and pricing.needs_latency else {}
    for i, name in enumerate(todo, 1):
        spec = get_baseline(name, 1.0, resolution, run.num_classes)
        step = BaselineStep(name, i, len(todo))
        started = time.perf_counter()
        record = baseline_record(run, study, spec, name, step, timed.get(name))
        record.update(
            name=name,
            width=1.0,
            resolution=resolution,
            seconds=time.perf_counter() - started,
        )
        study.set_user_attr(f"baseline:{name}", record)
        run.on_event(Event("baseline-done", name, progress=replace(step, record=record)))


def baseline_record(
    run: _Runner,
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
    record: dict[str, Any] = {"arch": format_arch(spec), **run.pricing.costs(spec, timed)}
    rung = run.rungs[-1]
    where = f"{spec.resolution}x{spec.resolution}"
    if run.supernet is not None:
        try:
            run.space.params_of(spec)
        except SpaceError:
            rung = Rung(0, 1.0, run.recipe, run.fidelity, 0)
            record["note"] = "not a point of the space: trained standalone"
    scored = rung.label.startswith("supernet:")
    what = "scoring" if scored else "training"
    of = f" ({step.index}/{step.total})" if step is not None else ""
    run.on_event(
        Event("baseline", f"{what} baseline {progress_label}{of} at {where}", progress=step)
    )
    record.update(run.accuracy_of(study, spec, rung, progress_label))
    record.update(fidelity=rung.label, estimator="supernet" if scored else "train")
    return record


def baselines_of(study: optuna.Study) -> list[dict[str, Any]]:
    """The baselines' records stored in the study, by name."""
    return [v for k, v in sorted(study.user_attrs.items()) if k.startswith("baseline:")]

"""Fidelities of a search, and successive halving on Pareto rank between them.

Optuna's pruners do not apply to multi-objective studies, so ``--accuracy halving`` runs
the asynchronous form of successive halving itself (ASHA: Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning", Algorithm 2). Rungs 0..R train a candidate
from scratch on eta^(k-R) of the study's per-candidate budget (the top rung is the
study's own recipe). Every new candidate starts at rung 0; whenever rung k holds n
trained results, its best floor(n / eta) are promoted to rung k + 1, each once, without
waiting for the rung to fill (so several workers never idle, and a resumed study picks
up where the finished trials say it stands).

"Best" is the Pareto rank of (accuracy at that rung, target) — NSGA-II's non-dominated
sorting — with ties inside a front broken by crowding distance (the extremes of the
front first, then the most isolated points, so promotions spread along the front rather
than crowd at one end; Deb et al. 2002, sec. III-B), then by the earlier trial.

Each evaluation is one Optuna trial: a promotion is an enqueued trial with the
candidate's parameters and the user attributes ``rung`` and ``promoted_from``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from estimators import Recipe
from results._claims import claim
from results._pareto import crowding_distances, non_dominated_ranks
from search_space import NasctlError

__all__ = [
    "ACC_COST",
    "Promotion",
    "Rung",
    "candidates_done",
    "due_promotions",
    "fidelity_label",
    "fidelity_recipe",
    "halving_rungs",
    "promotion_order",
    "rung_fractions",
    "to_promote",
]

#: The search's objectives: accuracy up, target down.
ACC_COST = ("maximize", "minimize")


@dataclass(frozen=True)
class Rung:
    """One fidelity: the recipe a candidate is trained with there, and its label (equal
    labels mean interchangeable accuracies)."""

    index: int
    fraction: float  # of the study's per-candidate budget, before rounding
    recipe: Recipe
    label: str
    images: int  # training images seen (epochs x images per epoch)


@dataclass(frozen=True)
class Promotion:
    """Train ``arch`` (trained at ``rung - 1`` by trial ``source``) at ``rung``."""

    source: int
    arch: str
    params: dict[str, Any]
    rung: int


def fidelity_recipe(recipe: Recipe, images: int | None, train_size: int) -> Recipe:
    """``recipe`` trained on about ``images`` images: whole epochs of the training split
    when it is smaller, else one epoch of a seeded subset of that size."""
    if images is None:
        return recipe
    if images >= train_size:
        epochs = max(1, round(images / train_size))
        return recipe.replace(
            epochs=epochs, train_images=None, warmup_epochs=min(recipe.warmup_epochs, epochs)
        )
    return recipe.replace(
        epochs=1, train_images=images, warmup_epochs=min(recipe.warmup_epochs, 1.0)
    )


def fidelity_label(preset: str, recipe: Recipe) -> str:
    """``preset:e<epochs>[x<subset>]:b<batch>``: trials with one label share accuracies."""
    subset = f"x{recipe.train_images}" if recipe.train_images else ""
    return f"{preset}:e{recipe.epochs}{subset}:b{recipe.batch_size}"


def rung_fractions(eta: int, min_fidelity: float) -> list[float]:
    """Budget fractions of the rungs, lowest first: eta^-R, ..., 1/eta, 1, with R the
    largest such that eta^-R >= min_fidelity."""
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise NasctlError(f"eta must be an integer >= 2, got {eta!r}")
    if not 0 < min_fidelity <= 1 / eta + 1e-9:  # False for NaN too
        raise NasctlError(f"min_fidelity must be in (0, 1/eta], got {min_fidelity!r}")
    top = math.floor(math.log(1 / min_fidelity) / math.log(eta) + 1e-9)
    return [float(eta) ** (k - top) for k in range(top + 1)]


def halving_rungs(
    recipe: Recipe,
    images: int | None,
    train_size: int,
    eta: int,
    min_fidelity: float,
    preset: str,
) -> list[Rung]:
    """The rungs of a halving search whose top rung trains ``images`` per candidate
    (None: ``recipe`` as it is). Budgets are rounded to whole epochs of the training
    split, or to a seeded subset below one epoch (the subsets are nested: one seeded
    permutation); a rung that rounds to the same recipe as the next is dropped."""

    def seen(r: Recipe) -> int:
        return r.epochs * min(r.train_images or train_size, train_size)

    top = fidelity_recipe(recipe, images, train_size)
    full = seen(top) if images is None else images
    fractions = rung_fractions(eta, min_fidelity)
    recipes = [
        fidelity_recipe(recipe, max(2, round(full * f)), train_size) for f in fractions[:-1]
    ] + [top]
    kept = [
        (f, r)
        for i, (f, r) in enumerate(zip(fractions, recipes, strict=True))
        if i == len(recipes) - 1 or r != recipes[i + 1]
    ]
    return [Rung(i, f, r, fidelity_label(preset, r), seen(r)) for i, (f, r) in enumerate(kept)]


def promotion_order(values: object) -> np.ndarray:
    """Indices of (accuracy, target) points, best first: Pareto rank, then crowding
    distance (larger first), then index. Points with a NaN or infinite value are left
    out."""
    arr = np.asarray(values, dtype=float).reshape(-1, 2)
    ranks = non_dominated_ranks(arr, ACC_COST)
    crowding = crowding_distances(arr, ACC_COST)
    idx = np.flatnonzero(ranks >= 0)
    return idx[np.lexsort((idx, -crowding[idx], ranks[idx]))]


def to_promote(values: object, eta: int) -> np.ndarray:
    """The best floor(n / eta) of a rung's n results (ASHA's rule), best first."""
    order = promotion_order(values)
    return order[: len(order) // eta]


def _rung(t: FrozenTrial) -> int:
    return int(t.user_attrs.get("rung", 0))


def due_promotions(trials: Sequence[FrozenTrial], rungs: int, eta: int) -> list[Promotion]:
    """The promotions a study's trials call for and no trial has taken yet (a trial of
    the same architecture at the target rung, in any state, has taken it: a failed one is
    retried by the search, or failed for good, e.g. diverged). Highest rung first."""
    taken = {(t.user_attrs.get("arch"), _rung(t)) for t in trials}
    due = []
    for rung in range(rungs - 2, -1, -1):
        results = [
            t
            for t in trials
            if t.state is TrialState.COMPLETE
            and _rung(t) == rung
            and t.user_attrs.get("feasible")
            and t.user_attrs.get("reused_from") is None
            and t.values is not None
        ]
        values = [t.values for t in results]
        for i in to_promote(values, eta):
            t = results[i]
            arch = str(t.user_attrs["arch"])
            if (arch, rung + 1) not in taken:
                due.append(Promotion(t.number, arch, dict(t.params), rung + 1))
    return due


def candidates_done(trials: Sequence[FrozenTrial]) -> int:
    """Finished trials that are not promotions: what ``--trials`` counts."""
    return sum(
        t.state is TrialState.COMPLETE and t.user_attrs.get("promoted_from") is None for t in trials
    )


def enqueue_promotions(study: optuna.Study, rungs: int, eta: int) -> None:
    """Enqueue the promotions the finished trials call for. Each is claimed first (study
    attribute ``promotion-claim:<trial>``, see ``results._claims``), so that of several
    workers one enqueues it; should two still enqueue it, the later trial waits for the
    earlier and reuses its accuracy (``results._trial.wait_for_twin``)."""
    due = due_promotions(study.get_trials(deepcopy=False), rungs, eta)
    if not due:
        return
    held = claim(study, [f"promotion-claim:{p.source}" for p in due])
    now = due_promotions(study.get_trials(deepcopy=False), rungs, eta)
    still_due = {(p.arch, p.rung) for p in now}
    for p in due:
        if held.get(f"promotion-claim:{p.source}") and (p.arch, p.rung) in still_due:
            study.enqueue_trial(
                p.params, user_attrs={"rung": p.rung, "promoted_from": p.source, "arch": p.arch}
            )

"""Pareto fronts, non-dominated ranks and hypervolume over plain numpy arrays.

Points are rows of a ``(n, m)`` array of objective values, one direction per column
("maximize" accuracy, "minimize" latency/MACs/params). Internally every column is turned
into a loss to minimise (maximised columns are negated), as optuna's
``study/_multi_objective.py`` does.

Rules, the same for every function here:

* A point *dominates* another when it is no worse in every objective and strictly better
  in at least one (Deb et al. 2002, sec. II).
* A point with any NaN or infinite value is **excluded**: it is never on a front, never
  dominates, gets rank ``-1`` and adds nothing to a hypervolume. NaN is what a failed or
  infeasible (never trained) trial records, and an infinite cost or accuracy is not a
  measurement; neither may push a real point off the front.
* Duplicates (identical rows) do not dominate each other, so all copies of a
  non-dominated point are on the front and share a rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from search_space import NasctlError

__all__ = [
    "Direction",
    "ParetoError",
    "crowding_distances",
    "dominates",
    "finite_mask",
    "hypervolume",
    "non_dominated_mask",
    "non_dominated_ranks",
    "pareto_front",
]


class ParetoError(NasctlError):
    """Objective values, directions or a reference point that do not fit together."""


class Direction(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


def _directions(directions: Sequence[Direction | str | object], m: int) -> np.ndarray:
    """+1 for a minimised column, -1 for a maximised one. Accepts optuna's
    ``StudyDirection`` too (by its name)."""
    if isinstance(directions, str | Direction):
        raise ParetoError(
            f"directions must be a sequence with one direction per objective, got {directions!r}"
        )
    if len(directions) != m:
        raise ParetoError(
            f"directions must have one entry per objective ({m}), got {len(directions)}"
        )
    signs = np.empty(m)
    for i, d in enumerate(directions):
        name = d if isinstance(d, str) else getattr(d, "name", d)
        try:
            signs[i] = 1.0 if Direction(str(name).lower()) is Direction.MINIMIZE else -1.0
        except ValueError:
            raise ParetoError(
                f"directions[{i}] must be 'maximize' or 'minimize', got {d!r}"
            ) from None
    return signs


def _as_values(values: object) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ParetoError("values must be numbers (a points x objectives array)") from None
    if arr.ndim != 2:
        raise ParetoError(
            f"values must be a 2-D array (points x objectives), got shape {arr.shape}"
        )
    if arr.shape[1] < 1:
        raise ParetoError("values must have at least one objective column")
    return arr


def _losses(values: object, directions: Sequence[Direction | str | object]) -> np.ndarray:
    arr = _as_values(values)
    return arr * _directions(directions, arr.shape[1])


def finite_mask(values: object) -> np.ndarray:
    """True for the rows that take part (every value finite); see the module rules."""
    return np.isfinite(_as_values(values)).all(axis=1)


def dominates(
    a: Sequence[float], b: Sequence[float], directions: Sequence[Direction | str | object]
) -> bool:
    """Whether point ``a`` dominates point ``b`` (False when either is not finite)."""
    loss = _losses([a, b], directions)
    if not np.isfinite(loss).all():
        return False
    return bool((loss[0] <= loss[1]).all() and (loss[0] < loss[1]).any())


def _front_of_unique_sorted(loss: np.ndarray) -> np.ndarray:
    """Non-dominated mask of unique, lexicographically sorted loss rows.

    After the sort no row can be dominated by a later one, so the first remaining row is
    always on the front; in 2-D a row is on the front iff its second loss is below every
    earlier one (a running minimum), otherwise each step drops what the first row
    dominates (optuna's ``_is_pareto_front_2d`` / ``_nd``).
    """
    n, m = loss.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    if m == 1:
        on = np.zeros(n, dtype=bool)
        on[0] = True
        return on
    if m == 2:
        cummin = np.minimum.accumulate(loss[:, 1])
        on = np.ones(n, dtype=bool)
        on[1:] = cummin[1:] < cummin[:-1]
        return on
    on = np.zeros(n, dtype=bool)
    remaining = np.arange(n)
    rest = loss
    while len(remaining):
        on[remaining[0]] = True
        keep = (rest < rest[0]).any(axis=1)  # not dominated by (and not equal to) the top
        rest, remaining = rest[keep], remaining[keep]
    return on


def non_dominated_mask(
    values: object, directions: Sequence[Direction | str | object]
) -> np.ndarray:
    """True for the points on the Pareto front (first non-dominated front)."""
    loss = _losses(values, directions)
    mask = np.zeros(len(loss), dtype=bool)
    ok = np.flatnonzero(np.isfinite(loss).all(axis=1))
    if len(ok):
        unique, inverse = np.unique(loss[ok], axis=0, return_inverse=True)
        mask[ok] = _front_of_unique_sorted(unique)[inverse.reshape(-1)]
    return mask


def pareto_front(values: object, directions: Sequence[Direction | str | object]) -> np.ndarray:
    """Indices of the front's points, best first in the first objective (ties: by the
    next objectives, then by index)."""
    loss = _losses(values, directions)
    idx = np.flatnonzero(non_dominated_mask(values, directions))
    keys = [idx] + [loss[idx, j] for j in range(loss.shape[1] - 1, -1, -1)]
    return idx[np.lexsort(keys)]


def non_dominated_ranks(
    values: object, directions: Sequence[Direction | str | object]
) -> np.ndarray:
    """Front number of every point: 0 for the Pareto front, 1 for the front once those are
    removed, and so on (NSGA-II's non-dominated sorting); -1 for excluded points."""
    loss = _losses(values, directions)
    ranks = np.full(len(loss), -1, dtype=int)
    ok = np.flatnonzero(np.isfinite(loss).all(axis=1))
    if not len(ok):
        return ranks
    unique, inverse = np.unique(loss[ok], axis=0, return_inverse=True)
    unique_ranks = np.full(len(unique), -1, dtype=int)
    left = np.arange(len(unique))
    rank = 0
    while len(left):
        on = _front_of_unique_sorted(unique[left])  # a subset of sorted rows stays sorted
        unique_ranks[left[on]] = rank
        left = left[~on]
        rank += 1
    ranks[ok] = unique_ranks[inverse.reshape(-1)]
    return ranks


def crowding_distances(
    values: object, directions: Sequence[Direction | str | object]
) -> np.ndarray:
    """Crowding distance of every point within its own non-dominated front (NSGA-II,
    Deb et al. 2002, sec. III-B): per objective, the gap between the point's two
    neighbours on its front divided by that objective's range on the front, summed over
    the objectives; the two extremes of an objective get ``inf`` (so do all points of a
    front of one or two), and an objective that does not vary on a front adds nothing.
    Larger means more isolated: a selection that prefers it keeps the front spread out.

    Duplicates count as one point and share its distance; excluded points get NaN.
    """
    loss = _losses(values, directions)
    out = np.full(len(loss), np.nan)
    ok = np.flatnonzero(np.isfinite(loss).all(axis=1))
    if not len(ok):
        return out
    unique, inverse = np.unique(loss[ok], axis=0, return_inverse=True)
    ranks = non_dominated_ranks(unique, ["minimize"] * unique.shape[1])
    distance = np.zeros(len(unique))
    for rank in range(ranks.max() + 1):
        members = np.flatnonzero(ranks == rank)
        if len(members) <= 2:
            distance[members] = np.inf
            continue
        for j in range(unique.shape[1]):
            column = unique[members, j]
            order = members[np.argsort(column, kind="stable")]
            span = column.max() - column.min()
            if span <= 0:
                continue
            distance[order[[0, -1]]] = np.inf
            sorted_values = unique[order, j]
            distance[order[1:-1]] += (sorted_values[2:] - sorted_values[:-2]) / span
    out[ok] = distance[inverse.reshape(-1)]
    return out


def hypervolume(
    values: object,
    directions: Sequence[Direction | str | object],
    reference: Sequence[float],
) -> float:
    """Volume of objective space dominated by the points and bounded by ``reference``
    (Zitzler & Thiele 1998's S metric); larger is better.

    ``reference`` is in the objectives' own units and directions (e.g. accuracy 0 and the
    latency budget). Points that are not strictly better than it in every objective add
    nothing. Exact: a sweep in 2-D, recursive slicing (HSO, While et al. 2006) beyond,
    which is exponential in the number of objectives and meant for small fronts.
    """
    loss = _losses(values, directions)
    m = loss.shape[1]
    try:
        ref = np.asarray(reference, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ParetoError("reference must be a point of numbers") from None
    if ref.shape != (m,):
        raise ParetoError(f"reference must have one value per objective ({m}), got {ref.size}")
    if not np.isfinite(ref).all():
        raise ParetoError(f"reference must be finite in every objective, got {ref.tolist()}")
    ref = ref * _directions(directions, m)
    loss = loss[np.isfinite(loss).all(axis=1)]
    loss = loss[(loss < ref).all(axis=1)]
    if not len(loss):
        return 0.0
    unique = np.unique(loss, axis=0)
    return float(_hv(unique[_front_of_unique_sorted(unique)], ref))


def _hv(front: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of a non-dominated, lexsorted loss set, every point below ``ref``."""
    m = front.shape[1]
    if m == 1:
        return float(ref[0] - front[:, 0].min())
    if m == 2:
        # x ascending, y strictly descending: the strip between y_i and y_(i-1) is
        # covered from x_i to the reference.
        upper = np.concatenate(([ref[1]], front[:-1, 1]))
        return float((ref[0] - front[:, 0]) @ (upper - front[:, 1]))
    # Slice along the last objective: between consecutive levels, the covered region is
    # the (m-1)-D hypervolume of the points at or below the lower level.
    order = np.argsort(front[:, -1], kind="stable")
    levels = np.append(front[order, -1], ref[-1])
    total = 0.0
    for i in range(len(order)):
        depth = levels[i + 1] - levels[i]
        if depth <= 0:
            continue
        sub = front[order[: i + 1], :-1]
        sub = np.unique(sub, axis=0)
        total += depth * _hv(sub[_front_of_unique_sorted(sub)], ref[:-1])
    return total

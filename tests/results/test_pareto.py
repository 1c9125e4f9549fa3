from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from results import (
    Direction,
    ParetoError,
    dominates,
    finite_mask,
    hypervolume,
    non_dominated_mask,
    non_dominated_ranks,
    pareto_front,
)
from results._pareto import crowding_distances

INF, NAN = math.inf, math.nan
ACC_COST = ["maximize", "minimize"]  # (accuracy, cost), the search's objectives
MIN2 = ["minimize", "minimize"]


# --- brute force: the definitions, written as plainly as possible ----------------------


def _loss(values: np.ndarray, directions: list[str]) -> np.ndarray:
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    return np.asarray(values, dtype=float) * sign


def brute_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    loss = _loss(values, directions)
    ok = np.isfinite(loss).all(axis=1)
    out = np.zeros(len(loss), dtype=bool)
    for i in range(len(loss)):
        if not ok[i]:
            continue
        out[i] = not any(
            ok[j] and (loss[j] <= loss[i]).all() and (loss[j] < loss[i]).any()
            for j in range(len(loss))
        )
    return out


def brute_ranks(values: np.ndarray, directions: list[str]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    ranks = np.full(len(values), -1)
    left = np.isfinite(values).all(axis=1)
    rank = 0
    while left.any():
        sub = np.where(left[:, None], values, np.nan)
        on = brute_mask(sub, directions)
        ranks[on] = rank
        left &= ~on
        rank += 1
    return ranks


def brute_hv(values: np.ndarray, directions: list[str], ref: list[float]) -> float:
    """Exact union volume on the grid of all coordinates (cells counted one by one)."""
    loss = _loss(values, directions)
    r = _loss(np.array([ref]), directions)[0]
    loss = loss[np.isfinite(loss).all(axis=1)]
    loss = loss[(loss < r).all(axis=1)]
    if not len(loss):
        return 0.0
    axes = [np.unique(np.append(loss[:, j], r[j])) for j in range(loss.shape[1])]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        low = np.array([a[c] for a, c in zip(axes, cell, strict=True)])
        if (loss <= low).all(axis=1).any():
            total += float(np.prod([a[c + 1] - a[c] for a, c in zip(axes, cell, strict=True)]))
    return total


# --- table-driven cases ----------------------------------------------------------------

FRONT_CASES = [
    # (id, values, directions, expected mask)
    ("empty", np.zeros((0, 2)), ACC_COST, []),
    ("single", [[0.5, 10.0]], ACC_COST, [True]),
    ("chain", [[0.9, 30], [0.8, 20], [0.7, 10]], ACC_COST, [True, True, True]),
    ("dominated", [[0.9, 10], [0.8, 20], [0.9, 20]], ACC_COST, [True, False, False]),
    ("tie in accuracy", [[0.8, 10], [0.8, 12]], ACC_COST, [True, False]),
    ("tie in cost", [[0.8, 10], [0.7, 10]], ACC_COST, [True, False]),
    ("duplicates both kept", [[0.8, 10], [0.8, 10], [0.7, 5]], ACC_COST, [True, True, True]),
    ("dominated duplicates", [[0.9, 5], [0.8, 10], [0.8, 10]], ACC_COST, [True, False, False]),
    ("nan excluded", [[NAN, 1], [0.5, 10]], ACC_COST, [False, True]),
    ("nan cost excluded", [[0.99, NAN], [0.5, 10]], ACC_COST, [False, True]),
    ("+inf accuracy excluded", [[INF, 10], [0.5, 10]], ACC_COST, [False, True]),
    ("-inf cost excluded", [[0.1, -INF], [0.5, 10]], ACC_COST, [False, True]),
    ("+inf cost excluded", [[0.9, INF], [0.5, 10]], ACC_COST, [False, True]),
    ("all excluded", [[NAN, NAN], [INF, 1]], ACC_COST, [False, False]),
    ("both minimised", [[1, 4], [2, 2], [4, 1], [3, 3]], MIN2, [True, True, True, False]),
    ("one objective", [[3.0], [1.0], [1.0], [2.0]], ["minimize"], [False, True, True, False]),
    (
        "three objectives",
        [[1, 2, 3], [2, 1, 3], [1, 2, 4], [3, 3, 0], [3, 3, 1]],
        ["minimize"] * 3,
        [True, True, False, True, False],
    ),
]


@pytest.mark.parametrize(
    ("values", "directions", "expected"),
    [c[1:] for c in FRONT_CASES],
    ids=[c[0] for c in FRONT_CASES],
)
def test_non_dominated_mask(values, directions, expected) -> None:
    mask = non_dominated_mask(values, directions)
    assert mask.dtype == bool
    assert mask.tolist() == expected
    assert mask.tolist() == brute_mask(np.asarray(values, dtype=float), directions).tolist()


RANK_CASES = [
    ("layers", [[0.9, 30], [0.8, 20], [0.85, 40], [0.7, 35], [0.6, 50]], [0, 0, 1, 1, 2]),
    ("duplicates share a rank", [[0.8, 10], [0.8, 10], [0.7, 20], [0.7, 20]], [0, 0, 1, 1]),
    ("excluded get -1", [[NAN, 1], [0.8, 10], [0.7, INF], [0.6, 20]], [-1, 0, -1, 1]),
    ("ties", [[0.8, 10], [0.8, 11], [0.8, 12]], [0, 1, 2]),
    ("empty", np.zeros((0, 2)), []),
]


@pytest.mark.parametrize(
    ("values", "expected"), [c[1:] for c in RANK_CASES], ids=[c[0] for c in RANK_CASES]
)
def test_non_dominated_ranks(values, expected) -> None:
    ranks = non_dominated_ranks(values, ACC_COST)
    assert ranks.tolist() == expected
    assert ranks.tolist() == brute_ranks(np.asarray(values, dtype=float), ACC_COST).tolist()


HV_CASES = [
    # (id, values (accuracy, cost), reference (accuracy, cost), expected)
    ("one box", [[0.5, 10]], [0.0, 20], 0.5 * 10),
    ("staircase", [[0.5, 10], [0.8, 15]], [0.0, 20], 0.5 * 10 + 0.8 * 5 - 0.5 * 5),
    ("dominated point adds nothing", [[0.5, 10], [0.8, 15], [0.4, 12]], [0.0, 20], 6.5),
    ("duplicates count once", [[0.5, 10], [0.5, 10]], [0.0, 20], 5.0),
    ("on the reference adds nothing", [[0.0, 10], [0.5, 20]], [0.0, 20], 0.0),
    ("beyond the reference", [[0.5, 30], [0.9, 19]], [0.0, 20], 0.9),
    ("nan and inf excluded", [[NAN, 1], [0.5, -INF], [0.5, 10]], [0.0, 20], 5.0),
    ("empty", np.zeros((0, 2)), [0.0, 20], 0.0),
]


@pytest.mark.parametrize(
    ("values", "reference", "expected"), [c[1:] for c in HV_CASES], ids=[c[0] for c in HV_CASES]
)
def test_hypervolume_2d(values, reference, expected) -> None:
    assert hypervolume(values, ACC_COST, reference) == pytest.approx(expected)


def test_hypervolume_1d_and_3d() -> None:
    assert hypervolume([[3.0], [1.0]], ["minimize"], [4.0]) == pytest.approx(3.0)
    # Boxes 2x2x1 and 1x1x2 in 3-D overlapping in a 1x1x1 cube.
    values = [[0, 0, 1], [1, 1, 0]]
    assert hypervolume(values, ["minimize"] * 3, [2, 2, 2]) == pytest.approx(4 + 2 - 1)
    assert hypervolume(values, ["minimize"] * 3, [2, 2, 2]) == pytest.approx(
        brute_hv(np.array(values, dtype=float), ["minimize"] * 3, [2, 2, 2])
    )


def test_pareto_front_order_best_first() -> None:
    values = [[0.7, 10], [0.9, 30], [0.6, 40], [0.8, 20], [0.9, 30]]
    assert pareto_front(values, ACC_COST).tolist() == [1, 4, 3, 0]
    assert pareto_front(values, ["minimize", "maximize"]).tolist() == [2]


def test_dominates_and_finite_mask() -> None:
    assert dominates([0.9, 10], [0.8, 10], ACC_COST)
    assert not dominates([0.8, 10], [0.8, 10], ACC_COST)
    assert not dominates([0.9, INF], [0.1, 100], ACC_COST)
    assert finite_mask([[1, 2], [NAN, 1], [1, -INF]]).tolist() == [True, False, False]


def test_direction_enum_and_optuna_directions() -> None:
    import optuna

    values = [[0.9, 30], [0.8, 20], [0.85, 40]]
    expected = non_dominated_mask(values, ACC_COST).tolist()
    dirs = [Direction.MAXIMIZE, Direction.MINIMIZE]
    assert non_dominated_mask(values, dirs).tolist() == expected
    study_dirs = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert non_dominated_mask(values, study_dirs).tolist() == expected


# --- brute-force cross-check on random points ---------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("directions", [ACC_COST, MIN2, ["minimize", "maximize", "minimize"]])
def test_random_points_match_brute_force(seed: int, directions: list[str]) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    # Small integer grids make ties and duplicates common; a few points are spoiled.
    values = rng.integers(0, 6, size=(n, len(directions))).astype(float)
    spoiled = rng.random(n) < 0.1
    values[spoiled, 0] = rng.choice([NAN, INF, -INF], size=int(spoiled.sum()))
    assert (
        non_dominated_mask(values, directions).tolist() == brute_mask(values, directions).tolist()
    )
    assert (
        non_dominated_ranks(values, directions).tolist() == brute_ranks(values, directions).tolist()
    )
    ref = [7.0 if d == "minimize" else -1.0 for d in directions]
    assert hypervolume(values, directions, ref) == pytest.approx(brute_hv(values, directions, ref))


def test_random_continuous_points_hypervolume() -> None:
    rng = np.random.default_rng(123)
    values = np.column_stack([rng.random(200), rng.random(200) * 50])
    ref = [0.0, 50.0]
    front = values[non_dominated_mask(values, ACC_COST)]
    assert hypervolume(values, ACC_COST, ref) == pytest.approx(hypervolume(front, ACC_COST, ref))
    assert hypervolume(values[:50], ACC_COST, ref) == pytest.approx(
        brute_hv(values[:50], ACC_COST, ref)
    )


# --- bad input is refused with a sentence -------------------------------------------------

BAD_CASES = [
    ("1-D values", lambda: non_dominated_mask([1, 2, 3], ACC_COST), "values must be a 2-D array"),
    ("text values", lambda: non_dominated_mask([["a", "b"]], ACC_COST), "values must be numbers"),
    ("too few directions", lambda: non_dominated_mask([[1, 2]], ["minimize"]), "one entry per"),
    ("bad direction", lambda: non_dominated_ranks([[1, 2]], ["max", "minimize"]), "directions[0]"),
    ("direction string", lambda: non_dominated_mask([[1, 2]], "minimize"), "sequence"),
    ("reference length", lambda: hypervolume([[1, 2]], ACC_COST, [0.0]), "one value per"),
    ("reference inf", lambda: hypervolume([[1, 2]], ACC_COST, [0.0, INF]), "finite"),
]


@pytest.mark.parametrize(
    ("call", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_input_raises_pareto_error(call, message: str) -> None:
    with pytest.raises(ParetoError) as info:
        call()
    assert message in str(info.value)


# --- crowding distance ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # One front of three: the extremes are inf, the middle gets 0.4/0.4 + 9/9.
        ([[0.9, 10], [0.8, 5], [0.5, 1]], [INF, 2.0, INF]),
        # Four on one front: the neighbours' gaps over each objective's range.
        (
            [[0.9, 10], [0.85, 8], [0.6, 2], [0.5, 1]],
            [INF, 0.3 / 0.4 + 8 / 9, 0.35 / 0.4 + 7 / 9, INF],
        ),
        # Two fronts, each measured on its own: (0.7, 9) is dominated by (0.8, 5).
        ([[0.9, 10], [0.8, 5], [0.5, 1], [0.7, 9], [0.4, 6]], [INF, 2.0, INF, INF, INF]),
        # Duplicates are one point: two distinct points, both extremes.
        ([[0.9, 10], [0.9, 10], [0.5, 1]], [INF, INF, INF]),
        # NaN and infinite rows are excluded (NaN), and do not change the others.
        ([[0.9, 10], [NAN, 1], [0.8, 5], [0.5, INF], [0.5, 1]], [INF, NAN, 2.0, NAN, INF]),
        ([], []),
    ],
)
def test_crowding_distances(values, expected) -> None:
    got = crowding_distances(np.asarray(values, dtype=float).reshape(-1, 2), ACC_COST)
    np.testing.assert_allclose(got, expected)


def test_crowding_distance_ignores_a_constant_objective() -> None:
    # Three points, one front in 3-D, equal in the last objective: only the first two count.
    values = [[1.0, 3.0, 5.0], [2.0, 2.0, 5.0], [3.0, 1.0, 5.0]]
    got = crowding_distances(values, ["minimize"] * 3)
    np.testing.assert_allclose(got, [INF, 2.0, INF])

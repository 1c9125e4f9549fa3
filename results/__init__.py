"""What was found: study storage, Pareto front, tables, plots, export."""

from results._pareto import (
    Direction,
    ParetoError,
    dominates,
    finite_mask,
    hypervolume,
    non_dominated_mask,
    non_dominated_ranks,
    pareto_front,
)

__all__ = [
    "Direction",
    "ParetoError",
    "dominates",
    "finite_mask",
    "hypervolume",
    "non_dominated_mask",
    "non_dominated_ranks",
    "pareto_front",
]

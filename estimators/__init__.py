"""What an architecture costs and how good it is: MACs/params, latency, accuracy."""

from estimators._counting import CostReport, LayerCost, count

__all__ = [
    "CostReport",
    "LayerCost",
    "count",
]

"""What an architecture costs and how good it is: MACs/params, latency, accuracy."""

from estimators._counting import (
    CostReport,
    LayerCost,
    count,
    part_layers,
    standard_conv_macs,
)
from estimators._fvcore import fvcore_macs

__all__ = [
    "CostReport",
    "LayerCost",
    "count",
    "fvcore_macs",
    "part_layers",
    "standard_conv_macs",
]

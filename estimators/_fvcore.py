"""Cross-check adapter: MACs of a built module traced by fvcore (conv + linear only).

fvcore counts one fused multiply-add as one flop, like ``count``; it also counts
BatchNorm and pooling, which the MobileNet papers' MAdds leave out, so only its ``conv``
and ``linear`` operators are read. Tracing takes ~0.1-0.5 s a network.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ["fvcore_macs"]


def fvcore_macs(model: nn.Module, resolution: int, in_channels: int = 3) -> int:
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    logging.getLogger("fvcore").setLevel(logging.ERROR)  # "Unsupported operator" noise
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, torch.zeros(1, in_channels, resolution, resolution))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        by_op = analysis.by_operator()
    unexpected = set(by_op) - {"conv", "linear", "batch_norm", "adaptive_avg_pool2d"}
    if unexpected:  # a new operator would be silently left out of the comparison
        raise RuntimeError(f"fvcore counted operators nasctl does not expect: {unexpected}")
    return int(by_op.get("conv", 0) + by_op.get("linear", 0))

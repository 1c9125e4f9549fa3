"""Zero-cost accuracy proxies: a score from an untrained network and one batch.

Only a pre-filter, and only once its rank correlation with trained accuracy has been
measured on the data at hand (``bench/estimator_ranking.py``): published proxies reach
Spearman 0.5-0.8 on NAS benchmarks and do worse on real models.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from search_space import NasctlError

__all__ = ["naswot"]

#: Activations whose "on" pattern (output > 0) forms NASWOT's binary code; h-swish and
#: ReLU6 are positive exactly where ReLU is, so they count as ReLU units.
_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.Hardswish)


@torch.no_grad()
def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training", eq. 2):
    log |det K| with K[i, j] = N_A - hamming(c_i, c_j), where c_i is the binary pattern
    of which of the N_A ReLU-like units are active for image i of ``images`` (a
    normalised float batch, ideally of distinct classes). Higher is better: a network
    whose units separate the images more has a better-conditioned K.

    Runs a copy of ``model`` in training mode (batch statistics), so ``model`` itself
    is left untouched."""
    if images.ndim != 4 or len(images) < 2:
        raise NasctlError(
            f"images must be a batch of at least 2 NCHW images, got shape {tuple(images.shape)}"
        )
    net = copy.deepcopy(model).train()
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        codes = (output.reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, _RELU_LIKE)]
    try:
        net(images)
    finally:
        for hook in hooks:
            hook.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)

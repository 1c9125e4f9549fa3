"""The layers of a weight-sharing supernet: each holds its weights at the largest size
the search space gives its layer of the plan (``search_space._plan``); a call uses the
slice a candidate needs, with the channels of the candidate's ``BlockSpec``/``HeadSpec``,
and ``sliced`` cuts a layer's weights to the sizes of the candidate's plan layer of the
same name (module doc of ``_supernet``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from search_space import Activation, BlockSpec, HeadSpec, NasctlError
from search_space._blocks import ACT_LAYERS
from search_space._plan import Layer, LayerOp

__all__ = [
    "ElasticBlock",
    "ElasticConvBn",
    "ElasticHead",
    "ElasticSE",
    "SupernetError",
    "sliced",
]


class SupernetError(NasctlError):
    """A supernet file, or what it is asked to score, does not fit."""


_ACTS = {act: layer() for act, layer in ACT_LAYERS.items()}  # not in place: autograd


def _act(x: torch.Tensor, act: Activation | None) -> torch.Tensor:
    return x if act is None else _ACTS[act](x)


def _centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel x kernel`` of a conv weight (OFA's elastic kernel, sec. 3.1)."""
    k = weight.shape[-1]
    if kernel > k:
        raise SupernetError(f"kernel {kernel} is larger than the supernet's {k}")
    start = (k - kernel) // 2
    return weight[..., start : start + kernel, start : start + kernel]


class ElasticConvBn(nn.Module):
    """A conv (+ BatchNorm, or a conv bias) at the largest size of the plan's ``layer``; a
    call uses the first input/output channels and the centre of the kernel. A depthwise
    layer (groups = channels) gives as many output channels as it is given."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.depthwise = layer.op is LayerOp.DWCONV
        self.stride = layer.stride
        self.conv = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel,
            layer.stride,
            layer.padding,
            groups=layer.groups,
            bias=layer.bias,
        )
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(layer.out_channels) if layer.bn else None

    def forward(
        self, x: torch.Tensor, out_channels: int, kernel: int, act: Activation | None
    ) -> torch.Tensor:
        c_in = x.shape[1]
        c_out = c_in if self.depthwise else out_channels
        weight = _centre(self.conv.weight[:c_out, : 1 if self.depthwise else c_in], kernel)
        bias = None if self.conv.bias is None else self.conv.bias[:c_out]
        x = F.conv2d(
            x, weight, bias, self.stride, kernel // 2, groups=c_in if self.depthwise else 1
        )
        if self.bn is not None:
            bn = self.bn
            mean, var, tracked = _buffers(bn)
            factor = 0.0
            if self.training:  # as nn.BatchNorm2d: momentum None is a cumulative average
                tracked.add_(1)
                factor = 1.0 / float(tracked) if bn.momentum is None else bn.momentum
            x = F.batch_norm(
                x,
                mean[:c_out],
                var[:c_out],
                bn.weight[:c_out],
                bn.bias[:c_out],
                self.training,
                factor,
                bn.eps,
            )
        return _act(x, act)


def _buffers(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running mean, variance and batch count (always present: track_running_stats)."""
    return (
        cast(torch.Tensor, bn.running_mean),
        cast(torch.Tensor, bn.running_var),
        cast(torch.Tensor, bn.num_batches_tracked),
    )


class ElasticSE(nn.Module):
    """Squeeze-and-excitation (MobileNetV3 sec. 5.3) at the largest channels and squeeze
    width; a call uses the input's channels and the first ``squeeze`` channels."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor, squeeze: int) -> torch.Tensor:
        c = x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1)
        b1, b2 = cast(torch.Tensor, self.fc1.bias), cast(torch.Tensor, self.fc2.bias)
        s = F.relu(F.conv2d(s, self.fc1.weight[:squeeze, :c], b1[:squeeze]))
        s = F.hardsigmoid(F.conv2d(s, self.fc2.weight[:c, :squeeze], b2[:c]))
        return x * s


class ElasticBlock(nn.Module):
    """An inverted residual at its largest sizes (``layers``: the largest of each of its
    plan's weighted layers, by name within the block); a call runs the block a
    ``BlockSpec`` describes (the same layers, in the same order, as
    ``search_space.InvertedResidual``)."""

    def __init__(self, layers: Mapping[str, Layer]) -> None:
        super().__init__()
        self.conv_pw = ElasticConvBn(layers["conv_pw"]) if "conv_pw" in layers else None
        self.conv_dw = ElasticConvBn(layers["conv_dw"])
        fc1 = layers.get("se.fc1")
        self.se = ElasticSE(fc1.in_channels, fc1.out_channels) if fc1 else None
        self.conv_pwl = ElasticConvBn(layers["conv_pwl"])

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        out = x
        if self.conv_pw is not None and spec.has_expand_conv:
            out = self.conv_pw(out, spec.mid_channels, 1, spec.act)
        out = self.conv_dw(out, spec.mid_channels, spec.kernel, spec.act)
        if self.se is not None and spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.conv_pwl(out, spec.out_channels, 1, None)
        return out + x if spec.has_residual else out


class ElasticHead(nn.Module):
    """[1x1 conv] -> global average pool -> [hidden linear + act] -> dropout -> classifier,
    at the largest widths (``layers`` as for ``ElasticBlock``; ``search_space.Head`` with
    sliced weights)."""

    def __init__(self, layers: Mapping[str, Layer]) -> None:
        super().__init__()
        conv, hidden, classifier = layers.get("conv"), layers.get("hidden"), layers["classifier"]
        self.conv = ElasticConvBn(conv) if conv else None
        self.hidden = nn.Linear(hidden.in_channels, hidden.out_channels) if hidden else None
        self.classifier = nn.Linear(classifier.in_channels, classifier.out_channels)

    def forward(self, x: torch.Tensor, spec: HeadSpec) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x, spec.conv_channels, 1, spec.conv_act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if self.hidden is not None:
            h, c = spec.hidden_features, x.shape[1]
            x = _act(F.linear(x, self.hidden.weight[:h, :c], self.hidden.bias[:h]), spec.hidden_act)
        x = F.dropout(x, spec.dropout, self.training)
        return F.linear(x, self.classifier.weight[:, : x.shape[1]], self.classifier.bias)


def sliced(module: nn.Module, layer: Layer) -> dict[str, torch.Tensor]:
    """The state of ``module`` (an elastic layer at its largest size) at the sizes of the
    plan's ``layer``, keyed like its state_dict (views into it): dimension 0 (outputs,
    and BatchNorm's per-channel tensors) to ``out_channels``, dimension 1 to
    ``in_channels / groups``, a kernel to its centre ``kernel x kernel``; BatchNorm's
    batch count whole. One rule for every weighted layer, so the weights a spec takes are
    named by its plan and nowhere else."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in module.state_dict(keep_vars=True).items():
        if tensor.ndim == 0:
            out[key] = tensor
            continue
        size = (layer.out_channels, layer.in_channels // layer.groups)[: min(tensor.ndim, 2)]
        if any(want > have for want, have in zip(size, tensor.shape, strict=False)):
            raise SupernetError(
                f"{layer.name}.{key} takes {list(size)} channels but the supernet holds "
                f"{list(tensor.shape[: len(size)])}"
            )
        part = tensor[: size[0]] if len(size) == 1 else tensor[: size[0], : size[1]]
        out[key] = _centre(part, layer.kernel) if tensor.ndim == 4 else part
    return out

"""The layers of a weight-sharing supernet: each holds its weights at the largest size
the search space gives it, and a call (or ``sliced``) uses the slice a candidate needs;
the channels come from the candidate's ``BlockSpec``/``HeadSpec`` (module doc of
``_supernet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from search_space import Activation, BlockSpec, HeadSpec, NasctlError
from search_space._blocks import ACT_LAYERS

__all__ = [
    "ElasticBlock",
    "ElasticConvBn",
    "ElasticHead",
    "ElasticSE",
    "LargestSizes",
    "SupernetError",
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
    """A conv (+ BatchNorm, or a conv bias) at its largest size; a call uses the first
    input/output channels and the centre of the kernel. ``depthwise``: groups = channels,
    so output channels are the input's."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        depthwise: bool = False,
        bn: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.stride = stride
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride,
            kernel // 2,
            groups=in_channels if depthwise else 1,
            bias=not bn,
        )
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(out_channels) if bn else None

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

    def sliced(self, in_channels: int, out_channels: int, kernel: int) -> dict[str, torch.Tensor]:
        """The state of a ``ConvBnAct`` with these sizes, keyed like its state_dict."""
        c_in = 1 if self.depthwise else in_channels
        out = {"conv.weight": _centre(self.conv.weight[:out_channels, :c_in], kernel)}
        if self.conv.bias is not None:
            out["conv.bias"] = self.conv.bias[:out_channels]
        if self.bn is not None:
            mean, var, tracked = _buffers(self.bn)
            out.update(
                {
                    "bn.weight": self.bn.weight[:out_channels],
                    "bn.bias": self.bn.bias[:out_channels],
                    "bn.running_mean": mean[:out_channels],
                    "bn.running_var": var[:out_channels],
                    "bn.num_batches_tracked": tracked,
                }
            )
        return out


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

    def sliced(self, channels: int, squeeze: int) -> dict[str, torch.Tensor]:
        b1, b2 = cast(torch.Tensor, self.fc1.bias), cast(torch.Tensor, self.fc2.bias)
        return {
            "fc1.weight": self.fc1.weight[:squeeze, :channels],
            "fc1.bias": b1[:squeeze],
            "fc2.weight": self.fc2.weight[:channels, :squeeze],
            "fc2.bias": b2[:channels],
        }


@dataclass(frozen=True)
class LargestSizes:
    """The largest sizes one block position takes over every width and choice."""

    in_channels: int
    out_channels: int
    mid_channels: int
    se_channels: int
    kernel: int
    stride: int
    expand: bool  # some choice has an expansion conv here


class ElasticBlock(nn.Module):
    """An inverted residual at its largest sizes; a call runs the block a ``BlockSpec``
    describes (the same layers, in the same order, as ``search_space.InvertedResidual``)."""

    def __init__(self, size: LargestSizes) -> None:
        super().__init__()
        self.conv_pw = ElasticConvBn(size.in_channels, size.mid_channels) if size.expand else None
        self.conv_dw = ElasticConvBn(
            size.mid_channels, size.mid_channels, size.kernel, size.stride, depthwise=True
        )
        self.se = ElasticSE(size.mid_channels, size.se_channels) if size.se_channels else None
        self.conv_pwl = ElasticConvBn(size.mid_channels, size.out_channels)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        out = x
        if self.conv_pw is not None and spec.has_expand_conv:
            out = self.conv_pw(out, spec.mid_channels, 1, spec.act)
        out = self.conv_dw(out, spec.mid_channels, spec.kernel, spec.act)
        if self.se is not None and spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.conv_pwl(out, spec.out_channels, 1, None)
        return out + x if spec.has_residual else out

    def sliced(self, spec: BlockSpec) -> dict[str, torch.Tensor]:
        parts: dict[str, dict[str, torch.Tensor]] = {}
        if self.conv_pw is not None and spec.has_expand_conv:
            parts["conv_pw"] = self.conv_pw.sliced(spec.in_channels, spec.mid_channels, 1)
        parts["conv_dw"] = self.conv_dw.sliced(spec.mid_channels, spec.mid_channels, spec.kernel)
        if self.se is not None and spec.has_se:
            parts["se"] = self.se.sliced(spec.mid_channels, spec.se_channels)
        parts["conv_pwl"] = self.conv_pwl.sliced(spec.mid_channels, spec.out_channels, 1)
        return {f"{p}.{k}": v for p, state in parts.items() for k, v in state.items()}


class ElasticHead(nn.Module):
    """[1x1 conv] -> global average pool -> [hidden linear + act] -> dropout -> classifier,
    at the largest widths (``search_space.Head`` with sliced weights)."""

    def __init__(self, in_channels: int, spec: HeadSpec, num_classes: int) -> None:
        super().__init__()
        channels = in_channels
        self.conv: ElasticConvBn | None = None
        if spec.conv_channels:
            self.conv = ElasticConvBn(channels, spec.conv_channels, bn=spec.conv_bn)
            channels = spec.conv_channels
        self.hidden: nn.Linear | None = None
        if spec.hidden_features:
            self.hidden = nn.Linear(channels, spec.hidden_features)
            channels = spec.hidden_features
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor, spec: HeadSpec) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x, spec.conv_channels, 1, spec.conv_act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if self.hidden is not None:
            h, c = spec.hidden_features, x.shape[1]
            x = _act(F.linear(x, self.hidden.weight[:h, :c], self.hidden.bias[:h]), spec.hidden_act)
        x = F.dropout(x, spec.dropout, self.training)
        return F.linear(x, self.classifier.weight[:, : x.shape[1]], self.classifier.bias)

    def sliced(self, in_channels: int, spec: HeadSpec) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        channels = in_channels
        if self.conv is not None:
            state = self.conv.sliced(channels, spec.conv_channels, 1)
            out.update({f"conv.{k}": v for k, v in state.items()})
            channels = spec.conv_channels
        if self.hidden is not None:
            h = spec.hidden_features
            out["hidden.weight"] = self.hidden.weight[:h, :channels]
            out["hidden.bias"] = self.hidden.bias[:h]
            channels = h
        out["classifier.weight"] = self.classifier.weight[:, :channels]
        out["classifier.bias"] = self.classifier.bias
        return out

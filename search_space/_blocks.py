"""Plain PyTorch modules for the blocks of a spec: named submodules, straight forwards.

Module names are part of the contract: the layer plan (``_plan.py``) names its layers
``stem``, ``blocks.<i>.conv_pw`` ... exactly like these modules (a test proves it), and
the counter, the memory model and the code generator read the plan.
"""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn

from search_space._spec import Activation, BlockKind, BlockSpec

__all__ = [
    "ACT_LAYERS",
    "ConvBnAct",
    "DepthwiseSeparable",
    "InvertedResidual",
    "SqueezeExcite",
    "act_layer",
    "fold_batchnorm",
]

#: The torch module of every activation a layer plan names (``Layer.act``): the spec's
#: ``Activation`` values and the squeeze-and-excitation gate. The one place an activation
#: becomes torch: the builder, the supernet and the generated source all read it.
ACT_LAYERS: dict[str, type[nn.Module]] = {
    Activation.RELU: nn.ReLU,
    Activation.RELU6: nn.ReLU6,
    Activation.HSWISH: nn.Hardswish,
    Activation.SWISH: nn.SiLU,
    "hsigmoid": nn.Hardsigmoid,
}


def act_layer(act: str | None) -> nn.Module:
    """The activation's module, in place where torch has that (GELU, for one, has not)."""
    if act is None:
        return nn.Identity()
    layer = ACT_LAYERS[act]
    in_place = "inplace" in inspect.signature(layer).parameters
    return layer(inplace=True) if in_place else layer()


class ConvBnAct(nn.Module):
    """kxk convolution, BatchNorm (or a conv bias when ``bn=False``), optional activation.

    ``padding`` None is kernel // 2 ('same' at stride 1), what every MobileNet layer uses."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: Activation | None = Activation.RELU,
        bn: bool = True,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        pad = kernel // 2 if padding is None else padding
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride, pad, groups=groups, bias=not bn
        )
        self.bn = nn.BatchNorm2d(out_channels) if bn else nn.Identity()
        self.act = act_layer(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as in MobileNetV3 (Howard et al. 2019, sec. 5.3): pool ->
    1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> hard-sigmoid gate."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = act_layer("hsigmoid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * scale


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block (Howard et al. 2017, Fig. 3): depthwise + BN + act, [SE],
    pointwise + BN + act. No residual."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        c = spec.in_channels
        self.conv_dw = ConvBnAct(c, c, spec.kernel, spec.stride, groups=c, act=spec.act)
        self.se = SqueezeExcite(c, spec.se_channels) if spec.has_se else nn.Identity()
        self.conv_pw = ConvBnAct(c, spec.out_channels, act=spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.se(self.conv_dw(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 bottleneck (Sandler et al. 2018, Table 1; Howard et al. 2019,
    Fig. 4): [expand 1x1] -> depthwise -> [SE] -> linear 1x1 projection, + input when
    stride 1 and in == out."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.mid_channels
        self.conv_pw = (
            ConvBnAct(spec.in_channels, mid, act=spec.act)
            if spec.has_expand_conv
            else nn.Identity()
        )
        self.conv_dw = ConvBnAct(mid, mid, spec.kernel, spec.stride, groups=mid, act=spec.act)
        self.se = SqueezeExcite(mid, spec.se_channels) if spec.has_se else nn.Identity()
        self.conv_pwl = ConvBnAct(mid, spec.out_channels, act=None)
        self.has_residual = spec.has_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return out + x if self.has_residual else out


def fold_batchnorm(module: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy in eval mode with every ``ConvBnAct``'s BatchNorm folded into its conv (the
    deployment form: one conv with bias). The input module is left unchanged, unless
    ``inplace``: then it is the module folded (no copy) and returned."""
    model = (module if inplace else copy.deepcopy(module)).eval()
    for sub in model.modules():
        if isinstance(sub, ConvBnAct) and isinstance(sub.bn, nn.BatchNorm2d):
            sub.conv = nn.utils.fusion.fuse_conv_bn_eval(sub.conv, sub.bn)
            sub.bn = nn.Identity()
    return model


BLOCK_TYPES: dict[BlockKind, type[nn.Module]] = {
    BlockKind.DEPTHWISE_SEPARABLE: DepthwiseSeparable,
    BlockKind.INVERTED_RESIDUAL: InvertedResidual,
}

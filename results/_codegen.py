"""A standalone PyTorch source file for one ``ArchSpec``: torch alone runs it.

The file holds the spec as three small tables (stem, blocks, head) and a copy of the
block modules of ``search_space._blocks`` / ``_builder``, with the same submodule names
(``stem.conv``, ``blocks.3.conv_pw.bn``, ``head.classifier`` ...) so that a nasctl
state_dict loads into it with ``strict=True``. The copy is a second description of the
modules; ``tests/results/test_export.py`` runs the generated file for every baseline and
compares its output with nasctl's model, which is what keeps the two in step.
"""

from __future__ import annotations

from search_space import ArchSpec, BlockSpec, format_arch

__all__ = ["standalone_source"]

_HEADER = '''\
"""{title}

Written by `nasctl export --format py`. Needs torch only (no nasctl). Parameter names
match nasctl's modules, so a nasctl state_dict loads with strict=True.

    model = load_model()              # weights from the .pt file next to this one
    model = load_model("other.pt")    # or from another state_dict file
    python <this file> [WEIGHTS.pt]   # one forward pass on a random image

arch: {arch}
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

RESOLUTION = {resolution}
NUM_CLASSES = {num_classes}
# Input: float (N, 3, RESOLUTION, RESOLUTION), normalised as in training; output: logits.

# stem: out_channels, kernel, stride, act
STEM = {stem}
# blocks: kind ("ds" depthwise separable | "ir" inverted residual), in_channels,
# out_channels, kernel, stride, mid_channels (expanded width), se_channels (0: no SE), act
BLOCKS = [
{blocks}]
# head: conv_channels (0: none), conv_bn, conv_act, hidden_features (0: none),
# hidden_act, dropout
HEAD = {head}
'''

_BODY = '''

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}


def act_layer(name: str | None) -> nn.Module:
    return nn.Identity() if name is None else ACTIVATIONS[name](inplace=True)


class ConvBnAct(nn.Module):
    """kxk convolution ('same' padding), BatchNorm (or a conv bias), optional activation."""

    def __init__(self, cin, cout, kernel=1, stride=1, groups=1, act="relu", bn=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act = act_layer(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Pool -> 1x1 conv -> ReLU -> 1x1 conv -> hard-sigmoid gate (MobileNetV3)."""

    def __init__(self, channels, squeeze):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: depthwise kxk, [SE], pointwise 1x1; no residual."""

    def __init__(self, cin, cout, kernel, stride, mid, se, act):
        super().__init__()
        self.conv_dw = ConvBnAct(cin, cin, kernel, stride, groups=cin, act=act)
        self.se = SqueezeExcite(cin, se) if se else nn.Identity()
        self.conv_pw = ConvBnAct(cin, cout, act=act)

    def forward(self, x):
        return self.conv_pw(self.se(self.conv_dw(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: [1x1 expand], depthwise kxk, [SE], linear 1x1 projection,
    plus the input when stride 1 and in == out."""

    def __init__(self, cin, cout, kernel, stride, mid, se, act):
        super().__init__()
        self.conv_pw = ConvBnAct(cin, mid, act=act) if mid != cin else nn.Identity()
        self.conv_dw = ConvBnAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se) if se else nn.Identity()
        self.conv_pwl = ConvBnAct(mid, cout, act=None)
        self.has_residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return out + x if self.has_residual else out


class Head(nn.Module):
    """[1x1 conv] -> global average pool -> [hidden linear + act] -> dropout -> classifier."""

    def __init__(self, cin, conv, conv_bn, conv_act, hidden, hidden_act, dropout, classes):
        super().__init__()
        self.conv = ConvBnAct(cin, conv, act=conv_act, bn=conv_bn) if conv else nn.Identity()
        channels = conv or cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.hidden = nn.Linear(channels, hidden) if hidden else nn.Identity()
        self.hidden_act = act_layer(hidden_act) if hidden else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden or channels, classes)

    def forward(self, x):
        x = self.flatten(self.pool(self.conv(x)))
        x = self.hidden_act(self.hidden(x))
        return self.classifier(self.dropout(x))


BLOCK_TYPES = {"ds": DepthwiseSeparable, "ir": InvertedResidual}


class Net(nn.Module):
    """stem -> blocks -> head, from the tables above."""

    def __init__(self):
        super().__init__()
        out, kernel, stride, act = STEM
        self.stem = ConvBnAct(3, out, kernel, stride, act=act)
        self.blocks = nn.Sequential(*(BLOCK_TYPES[b[0]](*b[1:]) for b in BLOCKS))
        self.head = Head(BLOCKS[-1][2], *HEAD, NUM_CLASSES)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def load_model(weights: str | Path | None = None) -> Net:
    """The network in eval mode with the weights of a state_dict file (default: the .pt
    file with this file's name)."""
    path = Path(weights) if weights is not None else Path(__file__).with_suffix(".pt")
    model = Net()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


if __name__ == "__main__":
    net = load_model(sys.argv[1] if len(sys.argv) > 1 else None)
    with torch.inference_mode():
        logits = net(torch.randn(1, 3, RESOLUTION, RESOLUTION))
    print(f"logits {tuple(logits.shape)}, top class {int(logits.argmax(1))}")
'''


def standalone_source(spec: ArchSpec, title: str = "A MobileNet-style image classifier.") -> str:
    """The Python source of a torch-only module defining ``Net`` for ``spec``."""
    st, hd = spec.stem, spec.head
    stem = (st.out_channels, st.kernel, st.stride, st.act.value)
    rows = "".join(f"    {_literal(_block_row(b))},\n" for b in spec.blocks)
    head = (
        hd.conv_channels,
        hd.conv_bn,
        hd.conv_act.value,
        hd.hidden_features,
        hd.hidden_act.value,
        hd.dropout,
    )
    header = _HEADER.format(
        title=title.replace('"""', "'''"),
        arch=format_arch(spec),
        resolution=spec.resolution,
        num_classes=spec.num_classes,
        stem=_literal(stem),
        blocks=rows,
        head=_literal(head),
    )
    return header + _BODY


def _block_row(b: BlockSpec) -> tuple[str, int, int, int, int, int, int, str]:
    return (
        b.kind.value,
        b.in_channels,
        b.out_channels,
        b.kernel,
        b.stride,
        b.mid_channels,
        b.se_channels,
        b.act.value,
    )


def _literal(row: tuple[object, ...]) -> str:
    """A tuple literal in the house quote style (values are numbers, bools and plain tokens)."""
    return repr(row).replace("'", '"')

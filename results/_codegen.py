"""A standalone PyTorch source file for one ``ArchSpec``: torch alone runs it.

The file holds the network's layer plan (``search_space.plan``) as a table, one row a
layer, and a small interpreter that builds a module per row under the row's name and
runs the rows in order. The plan's names are nasctl's module names, so a nasctl
state_dict loads into it with ``strict=True``; nothing here knows what a block contains,
so a new block option needs no change in this file. ``tests/results/test_export.py`` runs
the generated file for every baseline and compares its output with nasctl's model.
"""

from __future__ import annotations

from results._preprocessing import Preprocessing
from search_space import ArchSpec, Layer, format_arch, plan
from search_space._blocks import ACT_LAYERS

__all__ = ["standalone_source"]

_HEADER = '''\
"""{title}

Written by `nasctl export --format py`. Needs torch only (no nasctl). Parameter names
match nasctl's modules, so a nasctl state_dict loads with strict=True.

    model = load_model()              # weights from <this name>_weights.pt beside it
    model = load_model("other.pt")    # or a state_dict file, or a `nasctl export -f pt` file
    python <this file> [WEIGHTS.pt]   # one forward pass on a random image

arch: {arch}
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

RESOLUTION = {resolution}
NUM_CLASSES = {num_classes}
ARCH = "{arch}"
WEIGHTS = "{weights}"
# Input: float (N, 3, RESOLUTION, RESOLUTION), normalised as in training; output: logits.
# How training prepared an image (preprocess() below does it to a uint8 RGB tensor):
# shorter side resized to RESOLUTION (bilinear), centre crop; x / 255; (x - MEAN) / STD
# per channel. CLASSES[i] names logit i. None: the weights came without a data record.
MEAN = {mean}
STD = {std}
CLASSES = {classes}

# The layers in forward order: name (the module's name), op, the tensors it reads
# ("input": the image), in_channels, out_channels, kernel, stride, groups, BatchNorm
# (else a bias), activation of its output, dropout on its input. Ops: "conv" and
# "dwconv" (conv + BatchNorm + activation), "se_reduce" and "se_expand" (1x1 conv with
# bias, activation), "global_pool", "linear" (on the flattened input), "scale" (first
# tensor times the second), "add" (sum of the tensors).
LAYERS = [
{layers}]

ACTIVATIONS = {{{activations}}}
'''

_BODY = '''

def act_layer(name: str | None) -> nn.Module:
    return nn.Identity() if name is None else ACTIVATIONS[name]()


class ConvBnAct(nn.Module):
    """kxk convolution ('same' padding), BatchNorm (or a conv bias), activation."""

    def __init__(self, cin, cout, kernel, stride, groups, bn, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act = act_layer(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def make_layer(op, cin, cout, kernel, stride, groups, bn, act):
    """The module of one row and the activation after it (None: arithmetic on tensors)."""
    if op in ("conv", "dwconv"):
        return ConvBnAct(cin, cout, kernel, stride, groups, bn, act), nn.Identity()
    if op in ("se_reduce", "se_expand"):
        return nn.Conv2d(cin, cout, 1), act_layer(act)
    if op == "linear":
        return nn.Linear(cin, cout), act_layer(act)
    if op == "global_pool":
        return nn.AdaptiveAvgPool2d(1), nn.Identity()
    return None, None


class Net(nn.Module):
    """The rows of LAYERS, each a module under its name, run in order."""

    def __init__(self):
        super().__init__()
        self.rows = []
        last_read = {}
        for i, (name, op, reads, *shape, dropout) in enumerate(LAYERS):
            module, act = make_layer(op, *shape)
            if module is not None:
                *path, leaf = name.split(".")
                parent = self
                for part in path:
                    if part not in parent._modules:
                        parent.add_module(part, nn.Module())
                    parent = parent._modules[part]
                parent.add_module(leaf, module)
            self.rows.append((name, op, reads, dropout, module, act))
            for r in reads:
                last_read[r] = i
        # A tensor is dropped once the last row that reads it has run.
        self.drop = [[r for r in row[2] if last_read[r] == i] for i, row in enumerate(LAYERS)]

    def forward(self, x):
        t = {"input": x}
        for (name, op, reads, dropout, module, act), drop in zip(self.rows, self.drop):
            xs = [t[r] for r in reads]
            if op == "add":
                y = sum(xs[1:], xs[0])
            elif op == "scale":
                y = xs[0] * xs[1]
            elif op == "linear":
                y = act(module(F.dropout(xs[0].flatten(1), dropout, self.training)))
            else:
                y = act(module(xs[0]))
            for r in drop:
                del t[r]
            t[name] = y
        return y


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB images, (3, H, W) or (N, 3, H, W), as the normalised float batch the
    model takes: shorter side resized to RESOLUTION (bilinear, antialiased; nasctl
    resizes with PIL, so only an image already at RESOLUTION is bit-exact), centre crop,
    x / 255, (x - MEAN) / STD."""
    if MEAN is None or STD is None:
        raise ValueError("this export records no MEAN/STD (exported without a data record)")
    x = (images[None] if images.ndim == 3 else images).float()
    h, w = x.shape[-2:]
    if (h, w) != (RESOLUTION, RESOLUTION):
        scale = RESOLUTION / min(h, w)
        size = (max(RESOLUTION, round(h * scale)), max(RESOLUTION, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = (size[0] - RESOLUTION) // 2, (size[1] - RESOLUTION) // 2
        x = x[..., top : top + RESOLUTION, left : left + RESOLUTION]
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return x.div(255).sub(mean).div(std).contiguous()


def load_model(weights: str | Path | None = None) -> Net:
    """The network in eval mode with the weights of a state_dict file or of a
    `nasctl export -f pt` file (default: <this file's name>_weights.pt beside it)."""
    here = Path(__file__)
    path = Path(weights) if weights is not None else here.with_name(here.stem + "_weights.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a pt export: its spec, arch and state_dict
    model = Net()
    model.load_state_dict(state)
    # What deployment needs, on the model too: model.classes[logits.argmax(1)].
    model.resolution, model.mean, model.std, model.classes = RESOLUTION, MEAN, STD, CLASSES
    return model.eval()


if __name__ == "__main__":
    net = load_model(sys.argv[1] if len(sys.argv) > 1 else None)
    with torch.inference_mode():
        logits = net(torch.randn(1, 3, RESOLUTION, RESOLUTION))
    print(f"logits {tuple(logits.shape)}, top class {int(logits.argmax(1))}")
'''


def standalone_source(
    spec: ArchSpec,
    title: str = "A MobileNet-style image classifier.",
    preprocessing: Preprocessing | None = None,
    weights: str = "trained",
) -> str:
    """The Python source of a torch-only module defining ``Net`` for ``spec``, with the
    input statistics and class names of ``preprocessing`` as constants (None without)."""
    layers = plan(spec)
    rows = "".join(f"    {_literal(_row(layer))},\n" for layer in layers)
    acts = sorted({layer.act for layer in layers if layer.act is not None})
    activations = ", ".join(f'"{a}": nn.{ACT_LAYERS[a].__name__}' for a in acts)
    header = _HEADER.format(
        title=title.replace('"""', "'''"),
        arch=format_arch(spec),
        resolution=spec.resolution,
        num_classes=spec.num_classes,
        weights=weights.replace('"', "'"),
        mean=repr(preprocessing.mean) if preprocessing else None,
        std=repr(preprocessing.std) if preprocessing else None,
        classes=repr(list(preprocessing.classes)) if preprocessing else None,
        layers=rows,
        activations=activations,
    )
    return header + _BODY


def _row(layer: Layer) -> tuple[object, ...]:
    return (
        layer.name,
        layer.op.value,
        layer.reads,
        layer.in_channels,
        layer.out_channels,
        layer.kernel,
        layer.stride,
        layer.groups,
        layer.bn,
        layer.act,
        layer.dropout,
    )


def _literal(row: tuple[object, ...]) -> str:
    """A tuple literal in the house quote style (values are numbers, bools and plain tokens)."""
    return repr(row).replace("'", '"')

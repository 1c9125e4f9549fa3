"""The layer plan: a network written out once as the layers it runs, in forward order.

``plan(spec)`` turns an ``ArchSpec`` (stem, blocks, head) or a ``ClassicSpec`` (rows) into
a tuple of ``Layer`` rows: what every layer is (op, channels, kernel, stride, groups, bias,
BatchNorm, activation), the map it sees and gives, and which tensors it reads (so the
residual additions, squeeze-and-excitation and Inception branches are explicit). Every
reader of a network that is not the torch module itself (the MAC and parameter counter,
the memory model, the code generator, the architecture plot) reads this tuple; what a
block contains is written here and in its module, nowhere else. A test proves that the
names below are the built modules' names for every baseline, classic network and random
specs of the default space.

Names: a layer with weights, a pool or an LRN is named like its module in the built
network (``stem``, ``blocks.3.conv_dw``, ``blocks.3.se.fc1``, ``head.classifier``,
``conv2_1.shortcut``, ``fc6``), so its state_dict keys start with ``name + "."``. Steps
that are no module (``blocks.3.add``, ``blocks.3.se.scale``, ``inception3a.concat``) are
named in the same scheme. The network's input is the tensor ``"input"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from search_space import _classic_spec as classic
from search_space._spec import ArchSpec, BlockKind, BlockSpec, HeadSpec, Part, StemSpec

__all__ = ["INPUT", "Layer", "LayerOp", "plan", "plan_part"]

#: The name of the network's input tensor in ``Layer.reads``.
INPUT = "input"


class LayerOp(StrEnum):
    #: kxk convolution, BatchNorm or a bias, optional activation (grouped: AlexNet's).
    CONV = "conv"
    #: depthwise kxk convolution: groups == in_channels == out_channels.
    DWCONV = "dwconv"
    #: squeeze-and-excitation reduce: 1x1 conv with bias on the pooled vector, ReLU.
    SE_REDUCE = "se_reduce"
    #: squeeze-and-excitation expand: 1x1 conv with bias, hard-sigmoid gate.
    SE_EXPAND = "se_expand"
    #: fully connected layer with bias on the flattened input (``in_channels`` features).
    LINEAR = "linear"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    #: average over the whole map, to 1x1.
    GLOBAL_POOL = "global_pool"
    #: local response normalisation across channels (Krizhevsky et al. 2012, sec. 3.3).
    LRN = "lrn"
    #: elementwise sum of the tensors read (a residual), then the activation.
    ADD = "add"
    #: the first tensor read times the second (the SE gate), per channel.
    SCALE = "scale"
    #: the tensors read, concatenated along the channels (Inception).
    CONCAT = "concat"


#: Ops with weights (a convolution or a linear layer): the ones that cost MACs.
WEIGHTED_OPS = frozenset(
    {LayerOp.CONV, LayerOp.DWCONV, LayerOp.SE_REDUCE, LayerOp.SE_EXPAND, LayerOp.LINEAR}
)
#: Ops that write no new tensor: their result is the tensors they read (in place).
IN_PLACE_OPS = frozenset({LayerOp.ADD, LayerOp.SCALE, LayerOp.CONCAT})


@dataclass(frozen=True)
class Layer:
    """One step of the forward. ``part`` is the stem, block, head or classic row it belongs
    to; ``act`` the activation applied to its output (``relu``, ``relu6``, ``hswish``,
    ``hsigmoid``, ``tanh`` ... or None); ``dropout`` the rate applied to its input."""

    name: str
    op: LayerOp
    part: str
    reads: tuple[str, ...]
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = False
    bn: bool = False
    act: str | None = None
    dropout: float = 0.0
    ceil: bool = False

    @property
    def has_weights(self) -> bool:
        return self.op in WEIGHTED_OPS

    @property
    def in_place(self) -> bool:
        return self.op in IN_PLACE_OPS


def plan(spec: ArchSpec | classic.ClassicSpec) -> tuple[Layer, ...]:
    """Every layer of ``spec`` in forward order (module doc)."""
    if isinstance(spec, classic.ClassicSpec):
        return _classic_plan(spec)
    layers: list[Layer] = []
    source = INPUT
    for part in spec.parts():
        rows = plan_part(part, spec.num_classes, source)
        layers += rows
        source = rows[-1].name
    return tuple(layers)


def plan_part(part: Part, num_classes: int, source: str = INPUT) -> tuple[Layer, ...]:
    """The layers of one stem, block or head that reads the tensor ``source``."""
    s, p, hw = part.spec, part.name, part.in_size
    if isinstance(s, StemSpec):
        return (_conv(p, p, (source,), 3, s.out_channels, hw, s.kernel, s.stride, act=s.act.value),)
    if isinstance(s, BlockSpec):
        return _block(p, s, hw, source)
    assert isinstance(s, HeadSpec)  # Part.spec is one of three types
    return _head(p, s, part.in_channels, hw, num_classes, source)


def _conv(
    name: str,
    part: str,
    reads: tuple[str, ...],
    c_in: int,
    c_out: int,
    hw: int,
    kernel: int = 1,
    stride: int = 1,
    groups: int = 1,
    bn: bool = True,
    act: str | None = None,
    padding: int | None = None,
    op: LayerOp = LayerOp.CONV,
) -> Layer:
    """A convolution; 'same' padding (kernel // 2) unless ``padding`` is given."""
    pad = kernel // 2 if padding is None else padding
    out = (hw + 2 * pad - kernel) // stride + 1
    return Layer(
        name, op, part, reads, c_in, c_out, hw, out, kernel, stride, pad, groups, not bn, bn, act
    )


def _block(p: str, b: BlockSpec, hw: int, source: str) -> tuple[Layer, ...]:
    """MobileNet blocks (``_blocks.DepthwiseSeparable``, ``InvertedResidual``):
    [1x1 expand] -> depthwise kxk -> [SE] -> 1x1 projection (linear in an IR) [+ input]."""
    mid, act = b.mid_channels, b.act.value
    layers: list[Layer] = []
    cur = source
    if b.has_expand_conv:
        layers.append(_conv(f"{p}.conv_pw", p, (cur,), b.in_channels, mid, hw, act=act))
        cur = layers[-1].name
    dw = _conv(
        f"{p}.conv_dw",
        p,
        (cur,),
        mid,
        mid,
        hw,
        b.kernel,
        b.stride,
        mid,
        act=act,
        op=LayerOp.DWCONV,
    )
    layers.append(dw)
    cur, out = dw.name, dw.out_size
    if b.has_se:
        se = f"{p}.se"
        layers += [
            Layer(f"{se}.pool", LayerOp.GLOBAL_POOL, p, (cur,), mid, mid, out, 1),
            _conv(
                f"{se}.fc1",
                p,
                (f"{se}.pool",),
                mid,
                b.se_channels,
                1,
                bn=False,
                act="relu",
                op=LayerOp.SE_REDUCE,
            ),
            _conv(
                f"{se}.fc2",
                p,
                (f"{se}.fc1",),
                b.se_channels,
                mid,
                1,
                bn=False,
                act="hsigmoid",
                op=LayerOp.SE_EXPAND,
            ),
            Layer(f"{se}.scale", LayerOp.SCALE, p, (cur, f"{se}.fc2"), mid, mid, out, out),
        ]
        cur = f"{se}.scale"
    if b.kind is BlockKind.DEPTHWISE_SEPARABLE:
        layers.append(_conv(f"{p}.conv_pw", p, (cur,), mid, b.out_channels, out, act=act))
        return tuple(layers)
    layers.append(_conv(f"{p}.conv_pwl", p, (cur,), mid, b.out_channels, out))
    if b.has_residual:
        c = b.out_channels
        layers.append(Layer(f"{p}.add", LayerOp.ADD, p, (f"{p}.conv_pwl", source), c, c, out, out))
    return tuple(layers)


def _head(
    p: str, h: HeadSpec, channels: int, hw: int, num_classes: int, source: str
) -> tuple[Layer, ...]:
    """``_builder.Head``: [1x1 conv] -> global pool -> [hidden linear + act] -> classifier."""
    layers: list[Layer] = []
    cur = source
    if h.conv_channels:
        conv = _conv(
            f"{p}.conv",
            p,
            (cur,),
            channels,
            h.conv_channels,
            hw,
            bn=h.conv_bn,
            act=h.conv_act.value,
        )
        layers.append(conv)
        cur, channels = conv.name, h.conv_channels
    layers.append(Layer(f"{p}.pool", LayerOp.GLOBAL_POOL, p, (cur,), channels, channels, hw, 1))
    cur = f"{p}.pool"
    if h.hidden_features:
        layers.append(
            _linear(f"{p}.hidden", p, cur, channels, h.hidden_features, h.hidden_act.value)
        )
        cur, channels = f"{p}.hidden", h.hidden_features
    layers.append(_linear(f"{p}.classifier", p, cur, channels, num_classes, None, h.dropout))
    return tuple(layers)


def _linear(
    name: str, part: str, source: str, f_in: int, f_out: int, act: str | None, dropout: float = 0.0
) -> Layer:
    return Layer(
        name,
        LayerOp.LINEAR,
        part,
        (source,),
        f_in,
        f_out,
        1,
        1,
        bias=True,
        act=act,
        dropout=dropout,
    )


# --- classic networks ---------------------------------------------------------------------


def _classic_plan(spec: classic.ClassicSpec) -> tuple[Layer, ...]:
    """The rows of ``_classic_builder.ClassicNet``: one module per row, named by the row."""
    layers: list[Layer] = []
    cur = INPUT
    for shape in spec.shapes():
        row, c, hw, out = shape.layer, shape.in_channels, shape.in_size, shape.out_size
        n = row.name
        if isinstance(row, classic.Conv):
            act = row.act.value if row.act else None
            layers.append(
                _conv(
                    n,
                    n,
                    (cur,),
                    c,
                    row.out,
                    hw,
                    row.kernel,
                    row.stride,
                    row.groups,
                    row.bn,
                    act,
                    row.pad,
                )
            )
        elif isinstance(row, classic.Pool):
            op = LayerOp.MAXPOOL if row.kind == "max" else LayerOp.AVGPOOL
            layers.append(
                Layer(
                    n,
                    op,
                    n,
                    (cur,),
                    c,
                    c,
                    hw,
                    out,
                    row.kernel,
                    row.stride,
                    row.padding,
                    ceil=row.ceil,
                )
            )
        elif isinstance(row, classic.LRN):
            layers.append(Layer(n, LayerOp.LRN, n, (cur,), c, c, hw, hw, row.size))
        elif isinstance(row, classic.GlobalPool):
            layers.append(Layer(n, LayerOp.GLOBAL_POOL, n, (cur,), c, c, hw, 1))
        elif isinstance(row, classic.Linear):
            act = row.act.value if row.act else None
            layers.append(_linear(n, n, cur, c * hw * hw, row.out, act, row.dropout))
        elif isinstance(row, classic.Inception):
            layers += _inception(row, c, hw, cur)
        elif isinstance(row, classic.Residual):
            layers += _residual(row, c, hw, out, cur)
        cur = layers[-1].name
    return tuple(layers)


def _inception(row: classic.Inception, c: int, hw: int, source: str) -> list[Layer]:
    """Four branches on the same input, concatenated (``InceptionModule``)."""
    n, src = row.name, (source,)

    def conv(branch: str, reads: tuple[str, ...], c_in: int, c_out: int, k: int) -> Layer:
        return _conv(f"{n}.{branch}", n, reads, c_in, c_out, hw, k, bn=False, act="relu")

    return [
        conv("b1", src, c, row.c1, 1),
        conv("b2_reduce", src, c, row.c3_reduce, 1),
        conv("b2", (f"{n}.b2_reduce",), row.c3_reduce, row.c3, 3),
        conv("b3_reduce", src, c, row.c5_reduce, 1),
        conv("b3", (f"{n}.b3_reduce",), row.c5_reduce, row.c5, 5),
        Layer(f"{n}.b4_pool", LayerOp.MAXPOOL, n, src, c, c, hw, hw, 3, 1, 1, ceil=True),
        conv("b4", (f"{n}.b4_pool",), c, row.pool_proj, 1),
        Layer(
            f"{n}.concat",
            LayerOp.CONCAT,
            n,
            tuple(f"{n}.b{i}" for i in range(1, 5)),
            c,
            row.out,
            hw,
            hw,
        ),
    ]


def _residual(row: classic.Residual, c: int, hw: int, out: int, source: str) -> list[Layer]:
    """A ResNet block (``ResidualBlock``): convs with BatchNorm, a projection shortcut when
    the stride or the channels change, ReLU after the sum."""
    n, w, s, src = row.name, row.width, row.stride, (source,)
    if row.kind == "basic":
        layers = [
            _conv(f"{n}.conv1", n, src, c, w, hw, 3, s, act="relu"),
            _conv(f"{n}.conv2", n, (f"{n}.conv1",), w, row.out, out, 3),
        ]
    else:
        layers = [
            _conv(f"{n}.conv1", n, src, c, w, hw, 1, s, act="relu"),
            _conv(f"{n}.conv2", n, (f"{n}.conv1",), w, w, out, 3, act="relu"),
            _conv(f"{n}.conv3", n, (f"{n}.conv2",), w, row.out, out, 1),
        ]
    shortcut = source
    if s != 1 or c != row.out:
        layers.append(_conv(f"{n}.shortcut", n, src, c, row.out, hw, 1, s))
        shortcut = layers[-1].name
    main = layers[-1 if shortcut == source else -2].name
    layers.append(
        Layer(f"{n}.add", LayerOp.ADD, n, (main, shortcut), row.out, row.out, out, out, act="relu")
    )
    return layers

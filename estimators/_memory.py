"""Memory a batch-1 float32 inference needs: weights plus peak activations. Analytic.

The model of the forward (the accounting of MobileNetV2, Sandler et al. 2018, sec. 5.1):
the network runs one op at a time, in the order of its modules' ``forward``. An op reads
tensors and writes one new tensor. A tensor is alive from the op that writes it (the input
image: from the start) to the last op that reads it (the logits: to the end). **Peak
activations** = the largest sum of the tensors alive during one op: its inputs, its output
and every tensor kept for a later op (a residual block's input until the addition, the
finished branches of an Inception module until the next layer reads their concatenation).

New tensors: convolutions, linear layers, pooling, LRN, the pooled and squeezed vectors of
squeeze-and-excitation. Free, as deployment runtimes do them in place or fold them:
BatchNorm (folded into the conv), activations, dropout, flatten, the SE scaling, residual
additions, and concatenation (each branch writes into its slice of the output).

Weights = every parameter as ``count`` counts them (BatchNorm's scale and shift included,
running statistics not). 4 bytes a value (float32).
"""

from __future__ import annotations

from dataclasses import dataclass

from estimators._counting import LayerCost, classic_layers, count, part_layers
from search_space import ArchSpec, BlockKind, BlockSpec, HeadSpec, StemSpec
from search_space._classic_spec import (
    ClassicSpec,
    Conv,
    Inception,
    Linear,
    Residual,
)

__all__ = ["MemoryReport", "Op", "forward_ops", "memory", "peak_activations"]

#: float32
BYTES_PER_VALUE = 4


@dataclass(frozen=True)
class Op:
    """One step of the forward: reads tensors (by name), writes ``size`` values into a new
    tensor named ``writes`` (None: works in place)."""

    name: str
    reads: tuple[str, ...]
    writes: str | None = None
    size: int = 0


@dataclass(frozen=True)
class MemoryReport:
    """Bytes of the weights and of the activation peak, and the op where the peak is."""

    weights_bytes: int
    activations_bytes: int
    peak_at: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes


def _writes(layer: LayerCost, reads: tuple[str, ...]) -> Op:
    return Op(layer.name, reads, layer.name, layer.out_channels * layer.out_size**2)


def _arch_ops(spec: ArchSpec) -> list[Op]:
    ops: list[Op] = []
    cur: tuple[str, ...] = ("input",)
    for part in spec.parts():
        layers = {
            layer.name.removeprefix(part.name + "."): layer
            for layer in part_layers(part, spec.num_classes)
        }
        s = part.spec
        if isinstance(s, StemSpec):
            ops.append(_writes(layers["stem"], cur))
        elif isinstance(s, BlockSpec):
            block_in = cur
            if s.has_expand_conv:
                ops.append(_writes(layers["conv_pw"], cur))
            ops.append(_writes(layers["conv_dw"], (ops[-1].name,) if s.has_expand_conv else cur))
            dw = ops[-1].name
            if s.has_se:
                pooled = f"{part.name}.se.pool"
                ops.append(Op(pooled, (dw,), pooled, s.mid_channels))
                ops.append(_writes(layers["se.fc1"], (pooled,)))
                ops.append(_writes(layers["se.fc2"], (ops[-1].name,)))
                ops.append(Op(f"{part.name}.se.scale", (dw, ops[-1].name)))
            proj = "conv_pwl" if s.kind is BlockKind.INVERTED_RESIDUAL else "conv_pw"
            ops.append(_writes(layers[proj], (dw,)))
            if s.has_residual:
                ops.append(Op(f"{part.name}.add", (ops[-1].name, *block_in)))
        elif isinstance(s, HeadSpec):
            if s.conv_channels:
                ops.append(_writes(layers["conv"], cur))
                cur = (ops[-1].name,)
            ops.append(Op("head.pool", cur, "head.pool", s.conv_channels or part.in_channels))
            if s.hidden_features:
                ops.append(_writes(layers["hidden"], ("head.pool",)))
                ops.append(_writes(layers["classifier"], ("head.hidden",)))
            else:
                ops.append(_writes(layers["classifier"], ("head.pool",)))
        cur = (_last_written(ops),)
    return ops


def _last_written(ops: list[Op]) -> str:
    return next(op.writes for op in reversed(ops) if op.writes is not None)


def _classic_ops(spec: ClassicSpec) -> list[Op]:
    ops: list[Op] = []
    cur: tuple[str, ...] = ("input",)
    for shape in spec.shapes():
        row = shape.layer
        layers = {layer.name.removeprefix(row.name + "."): layer for layer in classic_layers(shape)}
        if isinstance(row, Conv | Linear):
            ops.append(_writes(layers[row.name], cur))
        elif isinstance(row, Inception):
            ops.append(_writes(layers["b1"], cur))
            ops.append(_writes(layers["b2_reduce"], cur))
            ops.append(_writes(layers["b2"], (ops[-1].name,)))
            ops.append(_writes(layers["b3_reduce"], cur))
            ops.append(_writes(layers["b3"], (ops[-1].name,)))
            pool = f"{row.name}.b4_pool"
            ops.append(Op(pool, cur, pool, shape.in_channels * shape.in_size**2))
            ops.append(_writes(layers["b4"], (pool,)))
            cur = tuple(f"{row.name}.{b}" for b in ("b1", "b2", "b3", "b4"))
            continue  # concatenation is free: the next row reads the four branches
        elif isinstance(row, Residual):
            block_in = cur
            ops.append(_writes(layers["conv1"], cur))
            ops.append(_writes(layers["conv2"], (ops[-1].name,)))
            if "conv3" in layers:
                ops.append(_writes(layers["conv3"], (ops[-1].name,)))
            main = ops[-1].name
            shortcut = block_in
            if "shortcut" in layers:
                ops.append(_writes(layers["shortcut"], block_in))
                shortcut = (ops[-1].name,)
            ops.append(Op(f"{row.name}.add", (main, *shortcut)))
            cur = (main,)
            continue
        else:  # pooling, LRN, global pooling: a new map
            size = shape.out_channels * shape.out_size**2
            ops.append(Op(row.name, cur, row.name, size))
        cur = (_last_written(ops),)
    return ops


def forward_ops(spec: ArchSpec | ClassicSpec) -> list[Op]:
    """The forward of ``spec`` as the ops of the model above, in execution order."""
    return _classic_ops(spec) if isinstance(spec, ClassicSpec) else _arch_ops(spec)


def peak_activations(ops: list[Op], input_size: int) -> tuple[int, str]:
    """(values alive at the peak, the op where it is) for ops reading ``input`` first."""
    size = {"input": input_size}
    born = {"input": -1}
    last = {"input": -1}
    for i, op in enumerate(ops):
        for t in op.reads:
            last[t] = i
        if op.writes is not None:
            size[op.writes], born[op.writes] = op.size, i
            last.setdefault(op.writes, i)
    last[_last_written(ops)] = len(ops) - 1  # the logits are kept to the end
    peak, at = 0, ops[0].name
    for i, op in enumerate(ops):
        live = sum(n for t, n in size.items() if born[t] <= i <= last[t])
        if live > peak:
            peak, at = live, op.name
    return peak, at


def memory(spec: ArchSpec | ClassicSpec) -> MemoryReport:
    """Weights + peak activations of a batch-1 float32 inference (model: module doc)."""
    if isinstance(spec, ClassicSpec):
        _, channels, res, _ = spec.input_shape
    else:
        channels, res = 3, spec.resolution
    peak, at = peak_activations(forward_ops(spec), channels * res * res)
    return MemoryReport(count(spec).params * BYTES_PER_VALUE, peak * BYTES_PER_VALUE, at)

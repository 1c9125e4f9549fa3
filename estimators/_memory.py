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

from estimators._counting import count
from search_space import INPUT, ArchSpec, ClassicSpec, LayerOp, plan

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


def forward_ops(spec: ArchSpec | ClassicSpec) -> list[Op]:
    """The forward of ``spec`` as the ops of the model above, in execution order: one op a
    plan layer, reading the tensors its plan row reads. A residual addition and the SE
    scaling work in place (their result is the tensor they update); a concatenation is no
    op at all (the next layer reads the branches)."""
    ops: list[Op] = []
    tensors: dict[str, tuple[str, ...]] = {INPUT: (INPUT,)}  # plan name -> tensors it is
    for layer in plan(spec):
        reads = tuple(t for name in layer.reads for t in tensors[name])
        if layer.op is LayerOp.CONCAT:
            tensors[layer.name] = reads
        elif layer.in_place:
            ops.append(Op(layer.name, reads))
            tensors[layer.name] = reads[:1]
        else:
            ops.append(Op(layer.name, reads, layer.name, layer.out_channels * layer.out_size**2))
            tensors[layer.name] = (layer.name,)
    return ops


def _last_written(ops: list[Op]) -> str:
    return next(op.writes for op in reversed(ops) if op.writes is not None)


def peak_activations(ops: list[Op], input_size: int) -> tuple[int, str]:
    """(values alive at the peak, the op where it is) for ops reading ``input`` first."""
    size = {INPUT: input_size}
    born = {INPUT: -1}
    last = {INPUT: -1}
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

"""A picture of one architecture: a row of boxes per stem, block and head.

Each row shows the choices of the part as coloured boxes (the kind and kernel, the
expansion ratio, squeeze-and-excitation, the activation, the stride), its channels and map
size, a bar of its MACs and, with a lookup table, a bar of its latency. Rows are a fixed
height in inches, so text keeps its size however deep the network is; a thin line starts
each stage (where the stride is 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from estimators import LatencyTable, LutError, count, part_key, predict
from search_space import (
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    LayerOp,
    Part,
    StemSpec,
    plan,
)

__all__ = ["KERNEL_COLOURS", "PartRow", "arch_rows", "plot_arch"]

#: Fill of the kind/kernel box, by kernel size.
KERNEL_COLOURS = {3: "#9ecae1", 5: "#fdae6b", 7: "#a1d99b"}
_OTHER_KERNEL = "#d9d9d9"
_ACT_COLOURS = {
    Activation.RELU: "#e0e0e0",
    Activation.RELU6: "#f6dca5",
    Activation.HSWISH: "#f4a3a3",
}
_ACT_NAMES = {Activation.RELU: "ReLU", Activation.RELU6: "ReLU6", Activation.HSWISH: "h-swish"}
_OTHER_ACT = "#d9d9d9"


def _act_colour(act: Activation) -> str:
    return _ACT_COLOURS.get(act, _OTHER_ACT)


def _act_name(act: Activation) -> str:
    return _ACT_NAMES.get(act, act.value)


_SE_COLOUR = "#c7a2e0"
_STRIDE2 = "#3b3b3b"
_MACS_BAR = "#6b8fbf"
_LATENCY_BAR = "#d98b5f"
_EXPANSION_MAX = 6.0  # the darkest expansion colour (MobileNetV2's t = 6)

# Row geometry, in inches.
_ROW = 0.34
_TOP = 0.95  # title, summary, legend
_BOTTOM = 0.25
_WIDTH = 11.0


@dataclass(frozen=True)
class PartRow:
    """What one row shows: the part, its MACs, its output channels, whether its plan adds
    a residual, and its latency from the table (ms)."""

    part: Part
    macs: int
    out_channels: int
    latency_ms: float | None
    residual: bool = False


def arch_rows(spec: ArchSpec, table: LatencyTable | None = None) -> list[PartRow]:
    """One row per stem, block and head, read from the layer plan; latency = the table
    entry's ratio to the reference block times the table's reference latency (no
    end-to-end correction)."""
    if table is not None and spec.num_classes != table.num_classes:
        raise LutError(
            f"num_classes of the architecture ({spec.num_classes}) must equal the table's "
            f"({table.num_classes})"
        )
    costs = count(spec).layers
    layers = plan(spec)
    rows = []
    for part in spec.parts():
        latency = None
        if table is not None:
            key = part_key(part, spec.num_classes)
            entry = table.entries.get(key)
            if entry is None:
                raise LutError(
                    f"the latency table has no entry for {part.name} ({key}); build a table "
                    "for a space that contains it"
                )
            latency = entry.ratio * table.reference_us / 1000
        mine = [layer for layer in layers if layer.part == part.name]
        macs = sum(cost.macs for cost in costs if cost.layer.part == part.name)
        residual = any(layer.op is LayerOp.ADD for layer in mine)
        rows.append(PartRow(part, macs, mine[-1].out_channels, latency, residual))
    return rows


def _expansion_colour(ratio: float) -> Any:
    from matplotlib import colormaps

    level = min(max((ratio - 1.0) / (_EXPANSION_MAX - 1.0), 0.0), 1.0)
    return colormaps["Greens"](0.08 + 0.6 * level)


def _millions(value: float) -> str:
    if value >= 1e9:
        return f"{value / 1e9:.2f}G"
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e3:.1f}K"


def _head_text(head: HeadSpec, num_classes: int) -> str:
    steps = []
    if head.conv_channels:
        steps.append(f"1x1 conv {head.conv_channels} {_act_name(head.conv_act)}")
    steps.append("avg pool")
    if head.hidden_features:
        steps.append(f"fc {head.hidden_features} {_act_name(head.hidden_act)}")
    steps.append(f"fc {num_classes}")
    return " → ".join(steps)


def plot_arch(
    spec: ArchSpec,
    path: str | Path,
    table: LatencyTable | None = None,
    title: str | None = None,
) -> Path:
    """Draw ``spec`` to ``path`` (PNG); per-part latency bars when ``table`` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    rows = arch_rows(spec, table)
    n = len(rows)
    height = _TOP + _ROW * (n + 1) + _BOTTOM
    fig = plt.figure(figsize=(_WIDTH, height), dpi=130)
    ax = fig.add_axes((0.01, _BOTTOM / height, 0.98, (_ROW * (n + 1)) / height))
    ax.set_xlim(0, 100)
    ax.set_ylim(n - 0.5, -1.5)  # row i is centred on y = i; the heads on y = -1
    ax.axis("off")
    font: dict[str, Any] = {"fontsize": 8, "va": "center"}

    def box(x0: float, x1: float, y: float, fill: Any, text: str, **kw: Any) -> None:
        ax.add_patch(
            Rectangle((x0, y - 0.38), x1 - x0, 0.76, facecolor=fill, edgecolor="#555", lw=0.6)
        )
        style = font | kw
        ax.text((x0 + x1) / 2, y, text, ha="center", **style)

    with_latency = table is not None
    macs_x0, macs_x1 = (67.0, 82.0) if with_latency else (67.0, 99.0)
    heads = [
        (2.5, "part"), (10.5, "block"), (19.0, "expand"), (25.0, "SE"), (32.0, "activation"),
        (38.75, "stride"), (43.0, "skip"), (50.0, "channels"), (59.5, "map"),
        ((macs_x0 + macs_x1) / 2, "MACs"),
    ]  # fmt: skip
    if with_latency:
        heads.append((93.0, "latency (lookup table)"))
    for x, label in heads:
        ax.text(x, -1, label, ha="center", fontweight="bold", **font)

    max_macs = max(r.macs for r in rows) or 1
    max_latency = max((r.latency_ms or 0.0) for r in rows) or 1.0
    for i, row in enumerate(rows):
        part, s = row.part, row.part.spec
        if isinstance(s, BlockSpec) and s.stride == 2:
            ax.plot([0, 100], [i - 0.5, i - 0.5], color="#999", lw=0.6, ls="--")
        label = part.name.removeprefix("blocks.")
        ax.text(4.5, i, label, ha="right", **font)
        if isinstance(s, StemSpec):
            box(
                5.5,
                15.5,
                i,
                KERNEL_COLOURS.get(s.kernel, _OTHER_KERNEL),
                f"conv {s.kernel}x{s.kernel}",
            )
            box(16.0, 22.0, i, "white", "–")
            box(22.5, 27.5, i, "white", "–")
            box(28.0, 36.0, i, _act_colour(s.act), _act_name(s.act))
            stride = s.stride
        elif isinstance(s, BlockSpec):
            kind = "IR" if s.kind is BlockKind.INVERTED_RESIDUAL else "DS"
            box(
                5.5,
                15.5,
                i,
                KERNEL_COLOURS.get(s.kernel, _OTHER_KERNEL),
                f"{kind} {s.kernel}x{s.kernel}",
            )
            box(16.0, 22.0, i, _expansion_colour(s.expansion), f"{s.expansion:.3g}")
            se = (_SE_COLOUR, f"{s.se_channels}") if s.has_se else ("white", "–")
            box(22.5, 27.5, i, se[0], se[1])
            box(28.0, 36.0, i, _act_colour(s.act), _act_name(s.act))
            stride = s.stride
        else:
            assert isinstance(s, HeadSpec)  # Part.spec is one of three types
            text = _head_text(s, spec.num_classes)
            # 8 pt fits about 55 characters in the 35-unit box; shrink longer heads.
            box(5.5, 40.5, i, "#f0f0f0", text, fontsize=min(8.0, 8.0 * 55 / len(text)))
            stride = 0
        if stride:
            dark = stride == 2
            fill, ink = (_STRIDE2, "white") if dark else ("white", "black")
            box(
                37.0, 40.5, i, fill, str(stride), color=ink, fontweight="bold" if dark else "normal"
            )
        if row.residual:
            ax.text(43.0, i, "+", ha="center", fontweight="bold", **font)
        ax.text(50.0, i, f"{part.in_channels} → {row.out_channels}", ha="center", **font)
        ax.text(59.5, i, f"{part.in_size}² → {part.out_size}²", ha="center", **font)
        width = (macs_x1 - macs_x0 - 6.0) * row.macs / max_macs
        ax.add_patch(Rectangle((macs_x0 + 6.0, i - 0.28), width, 0.56, color=_MACS_BAR, lw=0))
        ax.text(macs_x0 + 5.5, i, _millions(row.macs), ha="right", **font)
        if row.latency_ms is not None:
            width = 10.0 * row.latency_ms / max_latency
            ax.add_patch(Rectangle((89.5, i - 0.28), width, 0.56, color=_LATENCY_BAR, lw=0))
            ax.text(89.0, i, f"{row.latency_ms:.3f} ms", ha="right", **font)

    report = count(spec)
    summary = (
        f"{spec.resolution}x{spec.resolution}, {spec.num_classes} classes · "
        f"{report.params / 1e6:.2f}M params · {_millions(report.macs)} MACs"
    )
    if table is not None:
        total = sum(r.latency_ms or 0.0 for r in rows)
        summary += f" · {total:.2f} ms sum of parts"
        if table.correction is not None:
            summary += f" ({predict(spec, table) / 1000:.2f} ms corrected)"
    fig.text(0.01, 1 - 0.28 / height, title or "architecture", fontsize=12, fontweight="bold",
             va="center")  # fmt: skip
    fig.text(0.01, 1 - 0.55 / height, summary, fontsize=9, va="center", color="#333")

    def key(colour: Any, label: str) -> Patch:
        return Patch(facecolor=colour, edgecolor="#555", label=label)

    legend = [
        *(key(c, f"kernel {k}x{k}") for k, c in KERNEL_COLOURS.items()),
        key(_expansion_colour(_EXPANSION_MAX), "expansion (darker: wider)"),
        key(_SE_COLOUR, "SE (squeeze channels)"),
        *(key(_act_colour(a), _act_name(a)) for a in Activation),
        key(_STRIDE2, "stride 2"),
    ]
    fig.text(0.99, 1 - 0.55 / height, "+ residual connection", fontsize=8, ha="right",
             va="center", color="#333")  # fmt: skip
    fig.legend(
        handles=legend, loc="center left", bbox_to_anchor=(0.005, 1 - 0.85 / height),
        ncol=len(legend), fontsize=7, frameon=False, handlelength=1.2, columnspacing=1.0,
    )  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

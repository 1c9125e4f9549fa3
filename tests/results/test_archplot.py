"""The architecture diagram: its rows, its latency column and the PNG it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from estimators import LatencyConfig, LatencyTable, LutError, count, part_key
from estimators._lut import TableEntry
from results import plot_arch
from results._archplot import arch_rows
from search_space import baseline_names, get_baseline, load_space

TINY = "r32_n10,stem_k3_s2_c8_hs,ir_k3_s1_c8_se0.25_re,ir_k5_s2_e4_c16_hs,head_c32_hs_d0"


def fake_table(spec, skip: str | None = None) -> LatencyTable:
    """Part i takes (i + 1) x 0.1 ms: ratio (i + 1) / 2 to a 200 us reference."""
    entries = {}
    for i, part in enumerate(spec.parts()):
        if part.name != skip:
            key = part_key(part, spec.num_classes)
            entries[key] = TableEntry(key, (i + 1) / 2, 0.0, 0.0, 0.0, 0.0, 1)
    return LatencyTable(
        "fake", "", (spec.resolution,), spec.num_classes, LatencyConfig(), {}, "-",
        len(entries), entries, reference_batches_us=[200.0],
    )  # fmt: skip


@pytest.mark.parametrize("name", baseline_names())
def test_rows_add_up_to_the_network(name: str) -> None:
    spec = get_baseline(name)
    rows = arch_rows(spec)
    assert [r.part.name for r in rows] == [p.name for p in spec.parts()]
    assert sum(r.macs for r in rows) == count(spec).macs
    assert rows[-1].out_channels == spec.num_classes
    assert all(r.latency_ms is None for r in rows)


def test_latency_column_from_a_table() -> None:
    from search_space import parse_arch

    spec = parse_arch(TINY)
    rows = arch_rows(spec, fake_table(spec))
    assert [r.latency_ms for r in rows] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(LutError, match=r"no entry for blocks\.1"):
        arch_rows(spec, fake_table(spec, skip="blocks.1"))
    with pytest.raises(LutError, match="num_classes of the architecture"):
        arch_rows(spec.replace(num_classes=7), fake_table(spec))


def test_png_grows_with_depth_not_text_size(tmp_path: Path) -> None:
    small = plot_arch(get_baseline("mobilenet_v3_small"), tmp_path / "s.png", title="small")
    large = plot_arch(get_baseline("mobilenet_v2"), tmp_path / "v2.png", title="v2")
    with Image.open(small) as a, Image.open(large) as b:
        assert a.width == b.width
        # 0.34 in a row at 130 dpi: 19 parts against 13.
        assert b.height - a.height == pytest.approx(6 * 0.34 * 130, abs=2)
        pixels = np.asarray(a.convert("L"))
    assert pixels.min() < 50 and pixels.max() == 255  # drawn, on white


def test_random_architecture_with_table(tmp_path: Path) -> None:
    space = load_space()
    spec = space.spec_from_params(space.random_params(np.random.default_rng(3)), 10)
    path = plot_arch(spec, tmp_path / "deep" / "r.png", fake_table(spec))
    assert path.is_file() and path.stat().st_size > 10_000

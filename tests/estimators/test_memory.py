"""Weights + peak activations, against closed forms worked out by hand."""

from __future__ import annotations

import pytest

from estimators import count, memory
from estimators._memory import Op, peak_activations
from search_space import baseline_names, classic_names, get_baseline, get_classic, parse_arch
from search_space._classic_spec import ClassicSpec, Conv, GlobalPool, Inception, Linear


def test_liveness_of_a_chain_and_a_skip() -> None:
    # input 10 -> a 20 -> b 5 -> add(b, a) in place -> c 1: at b, a is kept for the add.
    ops = [
        Op("a", ("input",), "a", 20),
        Op("b", ("a",), "b", 5),
        Op("add", ("b", "a")),
        Op("c", ("b",), "c", 1),
    ]
    assert peak_activations(ops, 10) == (30, "a")
    ops[0] = Op("a", ("input",), "a", 12)
    assert peak_activations(ops, 10) == (22, "a")
    ops[1] = Op("b", ("a",), "b", 15)
    assert peak_activations(ops, 10) == (27, "b")


def test_tiny_mobilenet_closed_form() -> None:
    # stem 3x32x32 -> 8x16x16; an inverted residual without expansion, stride 1, residual;
    # head pool -> 10 classes. The peak is the projection: its input (dw out), its output
    # and the block input kept for the residual add: 3 x 8x16x16.
    spec = parse_arch("r32_n10,stem_k3_s2_c8_re,ir_k3_s1_c8_re,head_d0")
    report = memory(spec)
    assert report.activations_bytes == 4 * 3 * 8 * 16 * 16
    assert report.peak_at == "blocks.0.conv_pwl"
    assert report.weights_bytes == 4 * count(spec).params
    assert report.total_bytes == report.weights_bytes + report.activations_bytes


def test_expansion_and_se_closed_form() -> None:
    # stem 3x16x16 -> 8x8x8 (512); block: expand 8 -> 32 (2048), depthwise s1 (2048),
    # SE vectors, project to 8 (512), residual. At the depthwise conv: expanded + dw out +
    # block input = 2048 + 2048 + 512.
    spec = parse_arch("r16_n10,stem_k3_s2_c8_re,ir_k3_s1_e4_c8_se0.25_re,head_d0")
    report = memory(spec)
    assert report.activations_bytes == 4 * (2048 + 2048 + 512)
    assert report.peak_at == "blocks.0.conv_dw"


def test_lenet_closed_form() -> None:
    # 1x32x32 (1024) -> c1 6x28x28 (4704) -> s2 6x14x14 (1176): the peak is s2.
    report = memory(get_classic("lenet5"))
    assert report.activations_bytes == 4 * (4704 + 1176)
    assert report.peak_at == "s2"
    assert report.weights_bytes == 4 * 61_706


def test_inception_branches_are_kept_until_the_next_layer() -> None:
    # A 4x8x8 input (256 values), a 1x1 conv to 4 channels (256), then an Inception module
    # with branches of 1, 2, 3 and 5 channels (64, 128, 192, 320 values on the 8x8 map).
    # At its last branch conv b4 the module input is no longer needed, but the finished
    # branches are (their concatenation is the next layer's input): b1 + b2 + b3 + the
    # pooled map b4 reads + b4 = 64 + 128 + 192 + 256 + 320.
    rows = (
        Conv("conv", 4, 1),
        Inception("mix", 1, 2, 2, 2, 3, 5),
        GlobalPool(),
        Linear("fc", 3, act=None),
    )
    spec = ClassicSpec("toy", "Toy", "", rows, 8, 3, in_channels=4)
    report = memory(spec)
    assert report.activations_bytes == 4 * (64 + 128 + 192 + 256 + 320)
    assert report.peak_at == "mix.b4"


@pytest.mark.parametrize("name", baseline_names() + classic_names())
def test_peak_is_at_least_every_single_layer(name: str) -> None:
    spec = get_classic(name) if name in classic_names() else get_baseline(name)
    report = memory(spec)
    for layer in count(spec).layers:
        assert report.activations_bytes >= 4 * layer.out_channels * layer.out_size**2


def test_vgg16_weights_dwarf_its_activations() -> None:
    report = memory(get_classic("vgg16"))
    assert report.weights_bytes == 4 * 138_357_544
    # conv1_2 reads and writes 64x224x224.
    assert report.activations_bytes == 4 * 2 * 64 * 224 * 224

from __future__ import annotations

import pytest
import torch

from estimators import count
from estimators._counting import conv_macs
from search_space import (
    CLASSICS,
    ClassicSpec,
    SpecError,
    build_classic,
    classic_names,
    get_classic,
    register_classic,
)
from search_space._classic_spec import Conv, GlobalPool, Linear, Pool

# The parameter counts each network is published with (the variant is in its entry).
PUBLISHED = {
    "lenet5": 61_706,
    "alexnet": 60_965_224,
    "zfnet": 62_357_608,
    "vgg16": 138_357_544,
    "googlenet": 6_998_552,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
}


def test_every_classic_has_a_published_count() -> None:
    assert sorted(PUBLISHED) == sorted(classic_names())
    assert {n: CLASSICS[n].params for n in classic_names()} == PUBLISHED


@pytest.mark.parametrize("name", classic_names())
def test_counts_match_published_params(name: str) -> None:
    # The built module's count, layer by layer: tests/estimators/test_classic_counting.py.
    assert count(get_classic(name)).params == PUBLISHED[name]


# Map sizes the papers print (Fig. 2 of AlexNet, Fig. 3 of ZFNet, Table 1 of GoogLeNet).
SIZES = {
    "alexnet": {"conv1": 55, "pool1": 27, "conv2": 27, "pool2": 13, "conv5": 13, "pool5": 6},
    "zfnet": {"conv1": 110, "pool1": 55, "conv2": 26, "pool2": 13, "conv5": 13, "pool5": 6},
    "googlenet": {"conv1": 112, "pool1": 56, "conv2": 56, "pool2": 28, "inception3b": 28,
                  "pool3": 14, "inception4e": 14, "pool4": 7, "inception5b": 7, "avgpool": 1},
    "lenet5": {"c1": 28, "s2": 14, "c3": 10, "s4": 5, "c5": 1},
    "resnet50": {"conv1": 112, "pool1": 56, "conv2_3": 56, "conv3_1": 28, "conv5_3": 7},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SIZES))
def test_map_sizes_as_in_the_papers(name: str) -> None:
    sizes = {s.layer.name: s.out_size for s in get_classic(name).shapes()}
    assert {k: sizes[k] for k in SIZES[name]} == SIZES[name]


def test_channels_of_googlenet_table_1() -> None:
    out = {s.layer.name: s.out_channels for s in get_classic("googlenet").shapes()}
    assert [out[f"inception{i}"] for i in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]\
        == [256, 480, 512, 512, 512, 528, 832, 832, 1024]  # fmt: skip


def test_other_published_forms() -> None:
    # GoogLeNet as torchvision builds it (BatchNorm instead of biases, 3x3 in the "5x5"
    # branch): 6,624,904 params.
    report = count(get_classic("googlenet"))
    params = report.params
    for layer in report.layers:
        if layer.op != "linear":
            params += layer.out_channels  # BatchNorm's 2 per channel instead of 1 bias
        if layer.name.endswith(".b3"):
            params -= layer.out_channels * layer.in_channels * (25 - 9)
    assert params == 6_624_904
    # ResNet-50 v1.5 (torchvision: stride in the 3x3): 4.09G MACs; the paper's 3.86G.
    report = count(get_classic("resnet50"))
    macs = report.macs
    for layer in report.layers:
        if layer.name.endswith(".conv1") and layer.stride == 2:
            macs += conv_macs(layer.in_channels, layer.out_channels, 1, 1, layer.in_size)
            macs -= layer.macs
    assert (report.macs, macs) == (3_857_973_248, 4_089_184_256)
    # AlexNet as torchvision builds it (single tower 64-192-384-256-256): 61,100,840.
    rows = (
        Conv("conv1", 64, 11, stride=4, padding=2),
        Pool("pool1", 3, 2),
        Conv("conv2", 192, 5),
        Pool("pool2", 3, 2),
        Conv("conv3", 384, 3),
        Conv("conv4", 256, 3),
        Conv("conv5", 256, 3),
        Pool("pool5", 3, 2),
        Linear("fc6", 4096),
        Linear("fc7", 4096),
        Linear("fc8", 1000, act=None),
    )
    tv = ClassicSpec("alexnet_tv", "AlexNet", "torchvision", rows, 224, 1000)
    assert count(tv).params == 61_100_840


# MACs the papers state (multiply-adds): ResNet Table 1 (1.8G, 3.8G), GoogLeNet sec. 1
# (a budget of 1.5G).
@pytest.mark.parametrize(
    ("name", "macs", "tolerance"),
    [("resnet18", 1.8e9, 0.01), ("resnet50", 3.8e9, 0.02), ("googlenet", 1.5e9, 0.06)],
)
def test_macs_as_in_the_papers(name: str, macs: float, tolerance: float) -> None:
    assert abs(count(get_classic(name)).macs - macs) / macs < tolerance


@pytest.mark.parametrize(
    ("name", "res", "classes"),
    [("lenet5", 32, 10), ("alexnet", 227, 7), ("zfnet", 96, 10), ("vgg16", 32, 10),
     ("googlenet", 64, 5), ("resnet18", 64, 10), ("resnet50", 48, 3)],
)  # fmt: skip
def test_forward_shape_and_counts_at_other_inputs(name: str, res: int, classes: int) -> None:
    spec = get_classic(name, res, classes)
    model = build_classic(spec).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, spec.in_channels, res, res))
    assert out.shape == (2, classes)
    assert count(spec).params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "res", "message"),
    [
        ("vgg16", 16, "vgg16 cannot take resolution 16: its map vanishes at pool5; the "
         "smallest resolution it takes is 32"),
        ("lenet5", 16, "lenet5 cannot take resolution 16: its map vanishes at c5"),
        ("alexnet", 64, "alexnet cannot take resolution 64: its map vanishes at pool5"),
        ("resnet50", 0, "resolution must be a positive integer, got 0"),
        ("resnet50", 4096, "resolution of resnet50 must be at most 2048"),
    ],
)  # fmt: skip
def test_impossible_resolutions_are_refused(name: str, res: int, message: str) -> None:
    with pytest.raises(SpecError) as info:
        get_classic(name, res)
    assert message in str(info.value)


def test_registry_errors() -> None:
    with pytest.raises(SpecError, match="unknown classic network 'vgg19'"):
        get_classic("vgg19")
    with pytest.raises(SpecError, match="num_classes must be a positive integer"):
        get_classic("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="registered twice"):
        register_classic("vgg16", "VGG-16", "again", 1)(lambda n: ())
    with pytest.raises(SpecError, match="last layer must be a Linear"):
        ClassicSpec("x", "X", "", (Conv("c", 8, 3), GlobalPool()), 32, 10)

"""The classic networks counted analytically, against the built module and fvcore."""

from __future__ import annotations

from collections import defaultdict

import pytest

from estimators import count, fvcore_macs
from search_space import build_classic, classic_names, get_classic

pytestmark = pytest.mark.usefixtures("one_thread")


def _check(spec) -> None:
    report = count(spec)
    model = build_classic(spec)
    # Per layer: every parameter belongs to exactly one counted layer with the same total.
    grouped: dict[str, int] = defaultdict(int)
    names = [layer.name for layer in report.layers]
    for pname, p in model.named_parameters():
        owners = [ln for ln in names if pname.startswith(ln + ".")]
        assert len(owners) == 1, pname
        grouped[owners[0]] += p.numel()
    assert grouped == {layer.name: layer.params for layer in report.layers}
    assert report.macs == fvcore_macs(model, spec.resolution, spec.in_channels)


@pytest.mark.parametrize("name", classic_names())
def test_default_input_agrees_with_fvcore_and_module(name: str) -> None:
    _check(get_classic(name))


@pytest.mark.parametrize(
    ("name", "res"),
    [("lenet5", 48), ("zfnet", 128), ("vgg16", 64), ("googlenet", 96), ("resnet18", 97),
     ("resnet50", 64)],
)  # fmt: skip
def test_other_resolutions_agree_with_fvcore_and_module(name: str, res: int) -> None:
    _check(get_classic(name, res, 10))


def test_op_split() -> None:
    # AlexNet's grouped convs are convs, not depthwise; ResNet's 1x1s are pointwise.
    assert set(count(get_classic("alexnet")).by_op()) == {"conv", "linear"}
    assert set(count(get_classic("resnet50")).by_op()) == {"conv", "pointwise", "linear"}

from __future__ import annotations

import pytest
import torch

from estimators import count
from search_space import (
    REFERENCE_COUNTS,
    SpecError,
    baseline_names,
    build_model,
    get_baseline,
    register_baseline,
)


def _module_params(spec) -> int:
    return sum(p.numel() for p in build_model(spec).parameters())


@pytest.mark.parametrize("name", baseline_names())
def test_reference_counts_exact(name: str) -> None:
    spec = get_baseline(name)
    report = count(spec)
    assert (report.params, report.macs) == REFERENCE_COUNTS[name]
    assert _module_params(spec) == REFERENCE_COUNTS[name][0]


def test_every_baseline_has_reference_counts() -> None:
    assert sorted(REFERENCE_COUNTS) == sorted(baseline_names())


# MobileNetV1 paper (Howard et al. 2017), Tables 6 and 7: (width, resolution, MACs, params).
V1_PAPER = [
    (1.0, 224, 569e6, 4.2e6),
    (0.75, 224, 325e6, 2.6e6),
    (0.5, 224, 149e6, 1.3e6),
    (0.25, 224, 41e6, 0.5e6),
    (1.0, 192, 418e6, 4.2e6),
    (1.0, 160, 290e6, 4.2e6),
    (1.0, 128, 186e6, 4.2e6),
]


@pytest.mark.parametrize(("width", "res", "macs", "params"), V1_PAPER)
def test_v1_paper_table(width: float, res: int, macs: float, params: float) -> None:
    report = count(get_baseline("mobilenet_v1", width, res))
    assert abs(report.macs - macs) / macs < 0.01
    # The paper prints params to one decimal place (in millions): agree at that precision.
    assert round(report.params / 1e6, 1) == params / 1e6


@pytest.mark.parametrize("name", baseline_names())
@pytest.mark.parametrize(("width", "res", "classes"), [(0.5, 32, 10), (1.0, 64, 100)])
def test_forward_shape(name: str, width: float, res: int, classes: int) -> None:
    model = build_model(get_baseline(name, width, res, classes)).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, res, res)).shape == (2, classes)


def test_v2_keeps_1280_below_width_one() -> None:
    assert get_baseline("mobilenet_v2", 0.5).head.conv_channels == 1280
    assert get_baseline("mobilenet_v2", 1.4).head.conv_channels == 1792


def test_same_seed_same_weights() -> None:
    spec = get_baseline("mobilenet_v3_small", 0.5, 32, 10)
    a, b = build_model(spec, seed=1), build_model(spec, seed=1)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    c = build_model(spec, seed=2)
    assert not torch.equal(a.stem.conv.weight, c.stem.conv.weight)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mobilenet_v9"}, "unknown baseline"),
        ({"name": "mobilenet_v2", "width": 0}, "width"),
        ({"name": "mobilenet_v2", "width": -0.5}, "width"),
        ({"name": "mobilenet_v2", "resolution": 20}, "resolution"),
        ({"name": "mobilenet_v2", "resolution": 100}, "resolution"),
    ],
)
def test_bad_baseline_requests(kwargs, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        get_baseline(**kwargs)


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_baseline("mobilenet_v2")(lambda w, r, c: get_baseline("mobilenet_v2"))

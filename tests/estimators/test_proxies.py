from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from estimators import naswot
from search_space import NasctlError, build_model, parse_arch

TINY = parse_arch("r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s2_c24_hs,head_h32_hs_d0.2")


def test_naswot_matches_the_closed_form() -> None:
    # codes (1, 0) and (1, 1) over N_A = 2 units: K = [[2, 1], [1, 2]], det 3
    images = torch.tensor([[1.0, -1.0], [1.0, 1.0]]).view(2, 1, 1, 2)
    assert naswot(nn.Sequential(nn.Flatten(), nn.ReLU()), images) == pytest.approx(math.log(3))


def test_identical_codes_give_a_singular_kernel() -> None:
    images = torch.ones(3, 1, 1, 2)
    assert naswot(nn.Sequential(nn.Flatten(), nn.ReLU()), images) == -math.inf


def test_naswot_is_deterministic_and_leaves_the_model_alone() -> None:
    model = build_model(TINY, seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = naswot(model, images)
    assert math.isfinite(first) and naswot(model, images) == first
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_single_image_is_refused() -> None:
    with pytest.raises(NasctlError, match="at least 2 NCHW images"):
        naswot(nn.ReLU(), torch.zeros(1, 3, 8, 8))

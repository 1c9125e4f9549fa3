"""First-layer filters and feature maps from the checkpoints nasctl writes, on a real photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estimators import get_recipe, load_data, new_state, save_checkpoint
from results import VisualizeError, export_model, feature_layers, visualize
from results._visualize import feature_maps, load_image, load_trained
from search_space import NasctlError, build_classic, build_model, get_classic, parse_arch

TINY = "r32_n10,stem_k3_s2_c8_hs,ir_k3_s1_c8_se0.25_re,ir_k5_s2_e4_c16_hs,head_c32_hs_d0"
OTHER = "r32_n10,stem_k3_s2_c16_re,ir_k3_s2_c16_re,head_d0"


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "china.jpg"
    from sklearn.datasets import load_sample_image  # imported here: 0.2 s at collection

    Image.fromarray(load_sample_image("china.jpg")).save(path)  # 427x640 RGB
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A nasctl training checkpoint of TINY (not trained: a fresh state is enough)."""
    state = new_state(parse_arch(TINY), load_data("digits", 32), get_recipe("search"))
    path = save_checkpoint(state, tmp_path_factory.mktemp("ckpt") / "checkpoint.pt")
    return path, state


def test_training_checkpoint(photo: Path, trained: tuple[Path, object], tmp_path: Path) -> None:
    path, state = trained
    spec = parse_arch(TINY)
    model, mean, std = load_trained(spec, path)
    assert (tuple(mean), tuple(std)) == (state.mean, state.std)  # type: ignore[attr-defined]
    for name, value in model.state_dict().items():
        assert torch.equal(value, state.model.state_dict()[name])  # type: ignore[attr-defined]
    result = visualize(spec, path, photo, tmp_path / "out")
    # Default layers: the first, a middle and the last of stem, blocks.0, blocks.1.
    assert list(result.feature_pngs) == ["stem", "blocks.0", "blocks.1"]
    for png in (result.input_png, result.filters_png, *result.feature_pngs.values()):
        with Image.open(png) as img:
            assert img.format == "PNG" and img.width > 200


def test_pt_export_and_chosen_layers(photo: Path, tmp_path: Path) -> None:
    spec = parse_arch(TINY)
    exported = export_model(spec, tmp_path / "model.pt", "pt")
    result = visualize(spec, exported.path, photo, tmp_path / "v", ["blocks.0.conv_dw"], 4)
    assert list(result.feature_pngs) == ["blocks.0.conv_dw"]


def test_classic_state_dict_grayscale(photo: Path, tmp_path: Path) -> None:
    spec = get_classic("lenet5")
    model = build_classic(spec, seed=3)
    torch.save(model.state_dict(), tmp_path / "lenet.pt")
    assert feature_layers(model) == ["c1", "c3", "c5"]
    result = visualize(spec, tmp_path / "lenet.pt", photo, tmp_path / "v", ["c1", "c3"])
    assert sorted(result.feature_pngs) == ["c1", "c3"]


def test_image_is_resized_cropped_and_normalised(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("RGB", (80, 40), (51, 102, 153)).save(path)
    x, crop = load_image(path, 32, 3, [0.2, 0.4, 0.6], [0.5, 0.5, 0.5])
    assert x.shape == (1, 3, 32, 32) and crop.shape == (32, 32, 3)
    assert torch.allclose(x[0, :, 5, 7], torch.zeros(3), atol=1e-6)  # (v/255 - mean) / std
    x, crop = load_image(path, 24, 1, [0.0], [1.0])
    assert x.shape == (1, 1, 24, 24) and crop.ndim == 2


def test_feature_maps_are_the_layer_outputs(photo: Path) -> None:
    model = build_model(parse_arch(TINY)).eval()
    x, _ = load_image(photo, 32, 3, [0.5] * 3, [0.25] * 3)
    maps = feature_maps(model, x, ["stem", "blocks.1"])
    with torch.no_grad():
        stem = model.stem(x)
        assert torch.equal(maps["stem"], stem)
        assert torch.equal(maps["blocks.1"], model.blocks[1](model.blocks[0](stem)))
    assert maps["blocks.1"].shape == (1, 16, 8, 8) and np.isfinite(maps["stem"].numpy()).all()


@pytest.mark.parametrize(
    ("arch", "kwargs", "message"),
    [
        (OTHER, {}, "was saved for a different architecture"),
        ("classic", {}, "saved for a MobileNet-style architecture"),
        (TINY, {"layers": ["blocks.7"]}, "unknown layer 'blocks.7'; layers of this network: "
         "stem, blocks.0, blocks.1"),
        (TINY, {"layers": ["head.classifier"]}, "gives a tensor of shape (1, 10), not feature"),
        (TINY, {"maps_per_layer": 0}, "maps per layer must be a positive integer"),
    ],
)  # fmt: skip
def test_refusals(
    photo: Path, trained: tuple[Path, object], tmp_path: Path, arch: str, kwargs, message: str
) -> None:
    spec = get_classic("lenet5") if arch == "classic" else parse_arch(arch)
    with pytest.raises(NasctlError) as info:
        visualize(spec, trained[0], photo, tmp_path / "v", **kwargs)
    assert message in str(info.value)


def test_weights_of_another_network_and_bad_images(photo: Path, tmp_path: Path) -> None:
    torch.save(build_model(parse_arch(OTHER)).state_dict(), tmp_path / "other.pt")
    with pytest.raises(VisualizeError, match="does not hold weights of r32_n10,stem_k3_s2_c8"):
        visualize(parse_arch(TINY), tmp_path / "other.pt", photo, tmp_path / "v")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(VisualizeError, match=r"image '.*text\.jpg' cannot be read"):
        load_image(tmp_path / "text.jpg", 32, 3, [0.5] * 3, [0.25] * 3)
    with pytest.raises(VisualizeError, match="does not exist"):
        load_image(tmp_path / "none.jpg", 32, 3, [0.5] * 3, [0.25] * 3)

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from estimators import (
    Recipe,
    RecipeError,
    Supernet,
    SupernetError,
    SupernetRecipe,
    fit_supernet,
    load_data,
    load_supernet,
    load_supernet_state,
    new_supernet_state,
    save_supernet,
)
from estimators._elastic import sliced
from estimators._supernet import _module_of
from estimators._supernet_train import augment_views, subnets_at
from search_space import (
    ArchSpec,
    Layer,
    LayerOp,
    NasctlError,
    SearchSpace,
    SpaceError,
    baseline_names,
    builtin_space_text,
    get_baseline,
    plan,
)

TINY = builtin_space_text("tiny")
QUICK = SupernetRecipe.of(epochs=2, batch_size=32, train_images=128, bn_images=0, warmup_epochs=0.5)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share two cores with other work: one thread avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", 32)


def _scrambled(text: str) -> Supernet:
    """A supernet whose BatchNorm layers hold non-trivial weights and statistics, so a
    wrong slice of any of them changes the output."""
    supernet = Supernet(text, 10, seed=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in supernet.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
    return supernet.eval()


SUPERNETS = {name: _scrambled(builtin_space_text(name)) for name in ("default", "tiny")}


def _specs(supernet: Supernet) -> list[ArchSpec]:
    rng = np.random.default_rng(0)
    return [supernet.largest(), supernet.smallest(), *(supernet.sample(rng) for _ in range(4))]


# --- one network, every sub-network --------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_extracted_network_computes_what_the_supernet_computes(name: str) -> None:
    supernet = SUPERNETS[name]
    for i, spec in enumerate(_specs(supernet)):
        x = torch.randn(
            4, 3, spec.resolution, spec.resolution, generator=torch.Generator().manual_seed(i)
        )
        model = supernet.extract(spec).eval()
        with torch.no_grad():
            expected, got = supernet(x, spec), model(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        # the extracted network is exactly the spec's: same parameter count as build_model
        assert sum(p.numel() for p in model.parameters()) == sum(
            v.numel()
            for k, v in supernet.state_of(spec).items()
            if "running" not in k and "num_batches" not in k
        )


def _plan_state(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """The state_dict keys and shapes the plan of ``spec`` implies (a closed form): a
    ConvBnAct's conv (+ bias) and BatchNorm, an SE conv's or a linear layer's own."""
    state: dict[str, tuple[int, ...]] = {}
    for layer in plan(spec):
        if not layer.has_weights:
            continue
        out, c_in = layer.out_channels, layer.in_channels // layer.groups
        prefix = layer.name + (".conv" if layer.op in (LayerOp.CONV, LayerOp.DWCONV) else "")
        if layer.op is LayerOp.LINEAR:
            state[f"{prefix}.weight"] = (out, c_in)
        else:
            state[f"{prefix}.weight"] = (out, c_in, layer.kernel, layer.kernel)
        if layer.bias:
            state[f"{prefix}.bias"] = (out,)
        if layer.bn:
            for key in ("weight", "bias", "running_mean", "running_var"):
                state[f"{layer.name}.bn.{key}"] = (out,)
            state[f"{layer.name}.bn.num_batches_tracked"] = ()
    return state


def _in_space(supernet: Supernet) -> list[ArchSpec]:
    """Every baseline, at every width and resolution of the space, that is a point of it."""
    specs = []
    for name in baseline_names():
        for width in supernet.space.widths:
            for res in supernet.space.resolutions:
                spec = get_baseline(name, width, res, supernet.num_classes)
                try:
                    supernet.layout(spec)
                except NasctlError:
                    continue
                specs.append(spec)
    return specs


def test_the_weights_a_spec_takes_are_its_plan_layers() -> None:
    supernet = SUPERNETS["default"]
    baselines = _in_space(supernet)
    assert {s.resolution for s in baselines} == {32, 40, 48}  # V3-Large at width 1
    rng = np.random.default_rng(7)
    for spec in [*baselines, *_specs(supernet), *(supernet.sample(rng) for _ in range(20))]:
        want = _plan_state(spec)
        state = supernet.state_of(spec)
        assert {k: tuple(v.shape) for k, v in state.items()} == want
        got = supernet.extract(spec).state_dict()
        assert list(got) == list(want)  # the built module's order too
        assert {k: tuple(v.shape) for k, v in got.items()} == want


def test_a_plan_layer_the_supernet_lacks_or_outgrows_is_refused_by_name() -> None:
    block = SUPERNETS["tiny"].blocks[0]
    wide = Layer(
        "blocks.0.conv_dw", LayerOp.DWCONV, "blocks.0", (), 4096, 4096, 8, 8, 3, groups=4096
    )
    with pytest.raises(SupernetError, match=r"blocks.0.conv_dw.conv.weight takes \[4096, 1\]"):
        sliced(block.conv_dw, wide)
    extra = Layer("blocks.0.conv_xx", LayerOp.CONV, "blocks.0", (), 8, 8, 8, 8)
    with pytest.raises(SupernetError, match=r"holds no layer 'blocks\.0\.conv_xx' of the plan"):
        _module_of(block, "blocks.0", extra)


def test_training_mode_batch_statistics_agree_too() -> None:
    supernet = SUPERNETS["tiny"]  # no dropout in the tiny space's head
    spec = supernet.sample(np.random.default_rng(5))
    model = supernet.extract(spec).train()
    supernet.train()
    try:
        x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.testing.assert_close(model(x), supernet(x, spec), rtol=1e-5, atol=1e-6)
    finally:
        supernet.eval()


def test_sizes_span_the_space() -> None:
    supernet = SUPERNETS["default"]
    largest, smallest = supernet.largest(), supernet.smallest()
    assert (largest.resolution, smallest.resolution) == (48, 32)
    assert (
        len(largest.blocks) == 1 + 3 + 4 + 4 + 3 + 4
        and len(smallest.blocks) == 1 + 1 + 2 + 2 + 1 + 2
    )
    assert largest.stem.out_channels == 16 and smallest.stem.out_channels == 8
    assert all(b.kernel == 5 for b in largest.blocks[1:]) and all(
        b.kernel == 3 for b in smallest.blocks
    )
    assert all(b.has_se for b in largest.blocks) and not any(b.has_se for b in smallest.blocks)
    # the stored weights are the largest sub-network's, kernel 5 included
    big = supernet.extract(largest)
    assert sum(p.numel() for p in big.parameters()) == sum(p.numel() for p in supernet.parameters())


def test_a_smaller_kernel_is_the_centre_and_a_narrower_width_the_first_channels() -> None:
    supernet = SUPERNETS["default"]
    spec = supernet.smallest()  # width 0.5, kernel 3 everywhere
    model = supernet.extract(spec)
    big = supernet.blocks[1].conv_dw.conv.weight  # stage 1's first block: 5x5 at 144 channels
    small = model.blocks[1].conv_dw.conv.weight
    assert big.shape[-1] == 5 and small.shape[-1] == 3
    torch.testing.assert_close(small, big[: small.shape[0], :, 1:4, 1:4], rtol=0, atol=0)
    torch.testing.assert_close(
        model.stem.conv.weight, supernet.stem.conv.weight[:8], rtol=0, atol=0
    )
    torch.testing.assert_close(
        model.stem.bn.running_var, supernet.stem.bn.running_var[:8], rtol=0, atol=0
    )


def _edit(spec: ArchSpec, index: int, **changes: object) -> ArchSpec:
    blocks = list(spec.blocks)
    blocks[index] = dataclasses.replace(blocks[index], **changes)
    return spec.replace(blocks=tuple(blocks))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: s.replace(resolution=64), "resolution must be one of 32, 40, 48"),
        (lambda s: s.replace(num_classes=100), "num_classes must be 10 (the supernet's)"),
        (lambda s: _edit(s, 2, kernel=7), "blocks[2].kernel must be one of 3, 5"),
        (lambda s: _edit(s, 2, act="relu6"), "blocks[2].act must be one of"),
        (lambda s: get_baseline("mobilenet_v2", 1.0, 32, 10), "stem.act must be 'hswish'"),
        (lambda s: get_baseline("mobilenet_v3_large", 1.0, 96, 10), "resolution must be one of"),
    ],
)
def test_a_spec_outside_the_space_is_refused_naming_the_field(make, message: str) -> None:
    supernet = SUPERNETS["default"]
    spec = make(supernet.sample(np.random.default_rng(2)))
    for call in (
        supernet.extract,
        supernet.layout,
        lambda s: supernet(torch.zeros(1, 3, 32, 32), s),
    ):
        with pytest.raises(NasctlError) as info:
            call(spec)
        assert message in str(info.value)


def test_v3_large_at_width_one_is_a_sub_network() -> None:
    spec = get_baseline("mobilenet_v3_large", 1.0, 32, 10)
    supernet = SUPERNETS["default"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(supernet.extract(spec).eval()(x), supernet(x, spec))


def test_check_space_refuses_another_space() -> None:
    supernet = SUPERNETS["tiny"]
    supernet.check_space(SearchSpace.from_text(TINY))
    with pytest.raises(SupernetError, match="differs from the search's space"):
        supernet.check_space(SearchSpace.from_text(builtin_space_text("default")))


# --- scoring ---------------------------------------------------------------------------------


def test_score_is_a_seeded_top1_and_refuses_other_data(digits) -> None:
    state = new_supernet_state(TINY, digits, QUICK, data_seed=0)
    supernet = state.supernet
    spec = supernet.sample(np.random.default_rng(0))
    first = supernet.score(spec, digits, recal_batches=2, seed=3)
    n = len(digits.val_y)  # top-1 over the whole validation split: a count over n
    assert first * n == pytest.approx(round(first * n), abs=1e-6)
    assert supernet.score(spec, digits, recal_batches=2, seed=3) == first
    subset = supernet.score(spec, digits, recal_batches=1, seed=3, val_images=50)
    assert subset * 50 == pytest.approx(round(subset * 50), abs=1e-6)  # a count over 50
    with pytest.raises(SupernetError, match="is not the split the supernet was trained on"):
        supernet.score(spec, load_data("digits", 32, seed=1), recal_batches=1)
    with pytest.raises(SupernetError, match="was loaded at 40x40"):
        supernet.score(spec, load_data("digits", 40), recal_batches=1)
    with pytest.raises(SupernetError, match="recal_batches must be an integer >= 1"):
        supernet.score(spec, digits, recal_batches=0)
    with pytest.raises(SpaceError, match="blocks"):
        supernet.score(get_baseline("mobilenet_v3_small", 0.5, 32, 10), digits)


# --- training --------------------------------------------------------------------------------


def test_sandwich_is_largest_smallest_then_random() -> None:
    supernet = SUPERNETS["default"]
    specs = subnets_at(supernet, QUICK, step=3)
    assert len(specs) == 2 + QUICK.random_subnets
    assert specs[0].resolution == 48 and len(specs[0].blocks) == 19
    assert specs[1].resolution == 32 and len(specs[1].blocks) == 9
    assert subnets_at(supernet, QUICK, step=3) == specs != subnets_at(supernet, QUICK, step=4)


def test_views_at_two_resolutions_are_the_same_crop_and_flip() -> None:
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[..., :16] = 255  # left half white
    views = augment_views(
        {32: image, 64: image.repeat_interleave(2, 2).repeat_interleave(2, 3)},
        torch.Generator().manual_seed(4),
        pad=0.0,
        flip=True,
    )
    left = [bool(v[0, 0, 0, 0] == 255) for v in views.values()]
    assert left[0] == left[1]
    same = augment_views({32: image}, torch.Generator().manual_seed(4), pad=0.0, flip=False)
    assert torch.equal(same[32], image)
    padded = augment_views({32: image}, torch.Generator().manual_seed(4), pad=0.125, flip=False)
    assert padded[32].shape == image.shape


def test_recipe_fields_are_checked() -> None:
    with pytest.raises(RecipeError, match=r"recipe.random_subnets must be an integer >= 0"):
        SupernetRecipe(random_subnets=-1)
    with pytest.raises(RecipeError, match=r"recipe.lr must be > 0"):
        SupernetRecipe.of(lr=0.0)
    with pytest.raises(RecipeError, match=r"unknown supernet recipe field\(s\): epoch\b"):
        SupernetRecipe.of(epoch=3)
    assert SupernetRecipe.from_dict(QUICK.to_dict()) == QUICK
    assert QUICK.base == Recipe(
        epochs=2, batch_size=32, train_images=128, bn_images=0, warmup_epochs=0.5
    )


def test_a_file_from_before_the_recipe_held_a_recipe_is_read() -> None:
    """Supernet files once stored the recipe flat, without an optimizer field."""
    flat = {
        "epochs": 2, "batch_size": 32, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
        "warmup_epochs": 0.5, "label_smoothing": 0.1, "pad": 0.125, "flip": True,
        "train_images": 128, "bn_images": 0, "random_subnets": 1, "distill": False, "seed": 4,
    }  # fmt: skip
    recipe = SupernetRecipe.from_dict(flat)
    assert recipe.random_subnets == 1 and recipe.distill is False
    assert recipe.base == Recipe(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5,
                                 train_images=128, bn_images=0, seed=4)  # fmt: skip
    assert {k: recipe.flat()[k] for k in flat} == flat


def test_a_supernet_file_with_a_flat_recipe_resumes(digits, tmp_path: Path) -> None:
    state = new_supernet_state(TINY, digits, QUICK, data_seed=0)
    path = save_supernet(state, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    old = QUICK.flat()
    del old["optimizer"]  # the flat form had none (always SGD)
    torch.save({**payload, "recipe": old}, path)
    assert load_supernet_state(path).recipe == QUICK


def test_training_moves_the_weights_and_an_interrupted_run_resumes_exactly(
    digits, tmp_path: Path
) -> None:
    data = {32: digits}
    start = dict(new_supernet_state(TINY, digits, QUICK, data_seed=0).supernet.named_parameters())
    whole = fit_supernet(new_supernet_state(TINY, digits, QUICK, data_seed=0), data)
    assert whole.step == 8 and len(whole.history) == 2
    # The optimizer moved the weights (BatchNorm statistics are buffers, not counted).
    moved = [k for k, p in whole.supernet.named_parameters() if not torch.equal(p, start[k])]
    assert len(moved) > len(start) // 2

    state = new_supernet_state(TINY, digits, QUICK, data_seed=0)

    def stop(p) -> None:
        if p.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_supernet(state, data, on_progress=stop)
    path = save_supernet(state, tmp_path / "sn.pt")
    assert not (tmp_path / "sn.pt.tmp").exists()
    resumed = load_supernet_state(path)
    assert (resumed.epoch, resumed.batch, resumed.step) == (1, 1, 5)
    fit_supernet(resumed, data)
    a, b = whole.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    save_supernet(resumed, path)
    loaded = load_supernet(path)
    assert loaded.epochs_done == 2.0 and not loaded.training
    assert loaded.space_text == TINY and loaded.trained_on == whole.supernet.trained_on


def test_per_epoch_scores_of_largest_and_smallest(digits) -> None:
    recipe = QUICK.replace(epochs=1, bn_images=64)
    state = fit_supernet(new_supernet_state(TINY, digits, recipe, data_seed=0), {32: digits})
    record = state.history[0]
    # Each is the supernet's own seeded score of that sub-network (one recalibration
    # batch for 64 images), so scoring it again gives the same count.
    net = state.supernet
    for key, spec in (("largest_top1", net.largest()), ("smallest_top1", net.smallest())):
        assert record[key] == net.score(spec, digits, recal_batches=1, seed=recipe.base.seed), key


def test_missing_resolution_is_refused(digits) -> None:
    state = new_supernet_state(builtin_space_text("default"), digits, QUICK, data_seed=0)
    with pytest.raises(SupernetError, match=r"missing \[40, 48\]"):
        fit_supernet(state, {32: digits})


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"junk", "cannot be read"), ("tensor", "is not a nasctl supernet")],
)
def test_bad_files_are_refused(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "f.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "tensor":
        torch.save({"format": "something-else"}, path)
    with pytest.raises(SupernetError, match=message):
        load_supernet(path)

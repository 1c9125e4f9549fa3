from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from estimators import (
    PRESETS,
    Recipe,
    RecipeError,
    TrainingDiverged,
    augment,
    evaluate,
    fit,
    get_recipe,
    load_checkpoint,
    load_data,
    new_state,
    save_checkpoint,
    train_and_evaluate,
)
from estimators._loop import lr_at, param_groups
from search_space import NasctlError, build_model, parse_arch

#: A tiny network (stride 32, SE, h-swish, dropout) so every test trains in about a second.
TINY = parse_arch(
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s2_e2_c16_se0.25_hs,"
    "ir_k3_s2_c24_re,ir_k3_s2_c32_re,head_h32_hs_d0.2"
)
QUICK = Recipe(epochs=2, batch_size=32, train_images=192, bn_images=128, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", 32)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share two cores with other work: one thread avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- recipe -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "recipe.epochs must be an integer >= 1"),
        ("batch_size", 1.5, "recipe.batch_size must be an integer >= 1"),
        ("lr", 0.0, "recipe.lr must be > 0"),
        ("lr", math.nan, "recipe.lr must be > 0"),
        ("momentum", 1.0, "recipe.momentum must be in"),
        ("optimizer", "adam", "recipe.optimizer must be one of sgd-nesterov, adamw"),
        ("label_smoothing", 1.0, "recipe.label_smoothing must be in"),
        ("warmup_epochs", 5.0, "recipe.warmup_epochs must be in"),
        ("train_images", 1, "recipe.train_images must be >= 2"),
    ],
)
def test_recipe_refuses_bad_fields(field: str, value: object, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        Recipe(**{field: value})


def test_presets_and_overrides() -> None:
    assert set(PRESETS) == {"search", "full"}
    assert PRESETS["full"].epochs > PRESETS["search"].epochs
    assert get_recipe("full", epochs=7, lr=None).epochs == 7
    assert Recipe.from_dict(PRESETS["full"].to_dict()) == PRESETS["full"]
    with pytest.raises(RecipeError, match="preset must be one of"):
        get_recipe("medium")


def test_lr_warms_up_then_decays_to_zero() -> None:
    recipe = Recipe(epochs=4, lr=0.2, warmup_epochs=1.0)
    lrs = [lr_at(step, 10, recipe) for step in range(40)]
    assert lrs[:10] == sorted(lrs[:10]) and lrs[0] == pytest.approx(0.02)
    assert max(lrs) == pytest.approx(0.2) and lrs[10] == pytest.approx(0.2)
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 0.001


def test_no_weight_decay_on_batchnorm_and_bias() -> None:
    model = build_model(TINY)
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])
    bn = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {id(p) for p in bn} <= {id(p) for p in no_decay["params"]}
    n_params = sum(1 for _ in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n_params


# --- augmentation -----------------------------------------------------------------------


def test_augment_is_seeded_and_keeps_shape() -> None:
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    a = augment(images, torch.Generator().manual_seed(1), pad=2)
    b = augment(images, torch.Generator().manual_seed(1), pad=2)
    c = augment(images, torch.Generator().manual_seed(2), pad=2)
    assert a.shape == images.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment(images, torch.Generator(), pad=0, flip=False), images)


def test_augment_crops_are_shifted_windows_and_flips() -> None:
    images = torch.arange(4 * 3 * 6 * 6).reshape(4, 3, 6, 6).to(torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0), pad=2)
    for img, got in zip(images, out, strict=True):
        padded = nn.functional.pad(img, (2, 2, 2, 2))
        windows = [
            padded[:, y : y + 6, x : x + 6].flip(-1) if f else padded[:, y : y + 6, x : x + 6]
            for y in range(5)
            for x in range(5)
            for f in (False, True)
        ]
        assert any(torch.equal(got, w) for w in windows)


# --- evaluation -------------------------------------------------------------------------


class _Fixed(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(x)]


def test_evaluate_counts_top1_top5_and_per_class() -> None:
    # Six classes, four images; rank of the true class: 1st, 2nd, 6th, 1st.
    logits = torch.tensor(
        [
            [9.0, 5, 4, 3, 2, 1],
            [5.0, 9, 4, 3, 2, 1],
            [9.0, 5, 4, 3, 2, 1],
            [1.0, 2, 3, 4, 5, 9],
        ]
    )
    labels = torch.tensor([0, 0, 5, 5])
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    result = evaluate(_Fixed(logits), images, labels, tuple("abcdef"), (0, 0, 0), (1, 1, 1))
    assert (result.top1, result.top5, result.images) == (0.5, 0.75, 4)
    assert result.per_class["a"] == 0.5 and result.per_class["f"] == 0.5
    assert math.isnan(result.per_class["b"])  # no images of class b


# --- training ---------------------------------------------------------------------------


def test_same_seed_gives_identical_weights_and_loss(digits) -> None:
    runs = [fit(new_state(TINY, digits, QUICK), digits) for _ in range(2)]
    assert runs[0].history[-1]["train_loss"] == runs[1].history[-1]["train_loss"]
    assert _equal(runs[0].model.state_dict(), runs[1].model.state_dict())
    other = fit(new_state(TINY, digits, QUICK.replace(seed=1)), digits)
    assert other.history[-1]["train_loss"] != runs[0].history[-1]["train_loss"]


def test_global_rng_is_left_alone(digits) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(new_state(TINY, digits, QUICK.replace(epochs=1)), digits)
    assert torch.equal(torch.rand(3), expected)


def test_interrupt_and_resume_equals_uninterrupted(digits, tmp_path: Path) -> None:
    straight = fit(new_state(TINY, digits, QUICK), digits)

    def stop_in_second_epoch(p) -> None:
        if p.epoch == 1 and p.batch == 2:
            raise KeyboardInterrupt

    state = new_state(TINY, digits, QUICK)
    with pytest.raises(KeyboardInterrupt):
        fit(state, digits, on_progress=stop_in_second_epoch)
    assert (state.epoch, state.batch) == (1, 2)
    path = save_checkpoint(state, tmp_path / "ckpt.pt")
    resumed = fit(load_checkpoint(path), digits)
    assert _equal(resumed.model.state_dict(), straight.model.state_dict())
    assert resumed.history == [
        {**h, "train_seconds": r["train_seconds"]}
        for h, r in zip(straight.history, resumed.history, strict=True)
    ]


def test_train_and_evaluate_learns_and_reports(digits) -> None:
    seen = []
    result = train_and_evaluate(
        TINY,
        digits,
        QUICK.replace(epochs=3, train_images=640, optimizer="adamw", lr=0.01),
        threads=1,
        on_progress=seen.append,
    )
    assert result.top1 > 0.4  # chance is 0.1
    assert result.top5 >= result.top1 and result.epochs == 3 and len(result.history) == 3
    assert result.images_per_second > 0 and result.train_seconds > 0
    assert set(result.per_class) == set(digits.classes)
    assert [p.val_top1 is not None for p in seen].count(True) == 3


def test_threads_are_restored(digits) -> None:
    train_and_evaluate(TINY, digits, QUICK.replace(epochs=1, train_images=64), threads=2)
    assert torch.get_num_threads() == 1


def test_nan_loss_raises_training_diverged(digits) -> None:
    state = new_state(TINY, digits, QUICK)
    with torch.no_grad():
        state.model.head.classifier.weight.fill_(math.nan)
    with pytest.raises(TrainingDiverged, match="training loss became nan at epoch 1") as info:
        fit(state, digits)
    assert isinstance(info.value, NasctlError) and "lower the learning rate" in info.value.reason


def test_spec_must_match_data(digits) -> None:
    with pytest.raises(NasctlError, match="num_classes=10"):
        train_and_evaluate(TINY.replace(num_classes=5), digits, QUICK)
    with pytest.raises(NasctlError, match="loaded at 32x32"):
        train_and_evaluate(TINY.replace(resolution=64), digits, QUICK)


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_bad_checkpoint_is_refused(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "c.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(NasctlError, match="checkpoint"):
        load_checkpoint(path)

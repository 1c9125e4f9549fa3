"""Accuracy of a candidate: a training recipe, a deterministic training loop (CPU, or a
CUDA device with mixed precision: ``estimators/_device.py``), and evaluation (top-1,
top-5, per class).

Everything random is owned: the batch order of epoch e comes from a generator seeded
with (seed, e), augmentation from one seeded generator whose state is checkpointed, and
dropout from torch's global generator, seeded inside ``fork_rng`` and checkpointed (on
CUDA, from the device's generator seeded with (seed, step)). So a run is bit-identical
for a seed on CPU, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from estimators._data import load_data
from estimators._device import TrainDevice, resolve_device
from estimators._evaluate import EvalResult, evaluate, recalibrate_bn
from estimators._images import ImageData
from estimators._loop import (
    Loop,
    Position,
    augment,
    batches_per_epoch,
    make_optimizer,
    mix,
    read_file,
    resumed,
    train_batch,
    write_state,
)
from estimators._options import Optimizer
from estimators._recipe import PRESETS, Recipe, RecipeError, TrainingDiverged, get_recipe
from search_space import ArchSpec, NasctlError, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "PRESETS",
    "EvalResult",
    "Optimizer",
    "Recipe",
    "RecipeError",
    "TrainProgress",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "augment",
    "batches_per_epoch",
    "evaluate",
    "fit",
    "get_recipe",
    "load_checkpoint",
    "new_state",
    "recalibrate_bn",
    "save_checkpoint",
    "train_and_evaluate",
    "train_batch",
]

CHECKPOINT_FORMAT = "nasctl-checkpoint/1"


@dataclass(frozen=True)
class TrainProgress:
    """One report per training step and one per finished epoch (``batch == batches``)."""

    epoch: int  # 0-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int
    loss: float  # mean training loss so far this epoch
    accuracy: float  # training top-1 so far this epoch (on augmented images)
    images_per_second: float
    val_top1: float | None = None  # set on the end-of-epoch report


@dataclass(frozen=True)
class TrainResult:
    """What a search records for a candidate."""

    top1: float
    top5: float
    loss: float
    train_loss: float
    train_seconds: float
    images_per_second: float
    epochs: int
    per_class: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    #: Where and at what precision it trained: "cpu/fp32", "cuda:0 NVIDIA H200/bf16".
    device: str = "cpu/fp32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainState:
    """Everything a resumed run needs; mutated in place, so after a KeyboardInterrupt the
    caller still holds the last completed step and can save it."""

    spec: ArchSpec
    recipe: Recipe
    data_name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    batch: int = 0
    step: int = 0
    aug_gen: torch.Generator = field(default_factory=torch.Generator)
    rng: torch.Tensor = field(default_factory=torch.get_rng_state)
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    images: int = 0
    epoch_stats: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    last_eval: EvalResult | None = None  # of the latest epoch; not checkpointed
    #: ``TrainDevice.label`` of the latest training (a checkpoint from before devices
    #: were recorded trained on the CPU at fp32).
    device: str = "cpu/fp32"
    #: fp16's gradient scaler (its scale and growth counter), for an exact resume.
    scaler_state: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.epoch >= self.recipe.epochs


def new_state(spec: ArchSpec, data: ImageData, recipe: Recipe) -> TrainState:
    """A fresh model (initialised from ``recipe.seed``) and optimizer for ``data``."""
    _check_fit(spec, data)
    model = build_model(spec, seed=recipe.seed)
    gen = torch.Generator().manual_seed(mix(recipe.seed, "augment"))
    rng = torch.Generator().manual_seed(mix(recipe.seed, "dropout")).get_state()
    return TrainState(
        spec=spec,
        recipe=recipe,
        data_name=data.name,
        classes=data.classes,
        mean=data.mean,
        std=data.std,
        model=model,
        optimizer=make_optimizer(model, recipe),
        aug_gen=gen,
        rng=rng,
    )


def _check_fit(spec: ArchSpec, data: ImageData) -> None:
    if spec.num_classes != data.num_classes:
        raise NasctlError(
            f"the architecture has {spec.num_classes} classes but data {data.name!r} has "
            f"{data.num_classes}: build the spec with num_classes={data.num_classes}"
        )
    if spec.resolution != data.resolution:
        raise NasctlError(
            f"the architecture takes {spec.resolution}x{spec.resolution} input but data "
            f"{data.name!r} was loaded at {data.resolution}x{data.resolution}"
        )


def _diverged(value: float, epoch: int, batch: int, lr: float) -> TrainingDiverged:
    return TrainingDiverged(
        f"training loss became {value} at epoch {epoch + 1}, batch {batch + 1} (lr {lr:.3g}): "
        "lower the learning rate"
    )


def fit(
    state: TrainState,
    data: ImageData,
    *,
    on_progress: Callable[[TrainProgress], None] | None = None,
    device: TrainDevice | str | None = None,
) -> TrainState:
    """Train ``state`` up to ``recipe.epochs``, from wherever it stands (resume).

    Evaluates on the validation split after every epoch (``state.history``). Raises
    TrainingDiverged on a NaN/inf loss. Uses torch's current thread count (on CUDA, for
    augmentation). ``device`` (default the CPU at fp32) is where the model trains; the
    model and its optimizer state are moved there and stay there.
    """
    _check_fit(state.spec, data)
    if tuple(data.classes) != tuple(state.classes):
        raise NasctlError(
            f"the checkpoint was trained on classes {list(state.classes)[:5]}... but data "
            f"{data.name!r} has {list(data.classes)[:5]}..."
        )
    recipe, model = state.recipe, state.model
    loop = Loop(state, model, resolve_device(device), recipe, len(data.train_y))
    dev, indices, batches = loop.dev, loop.indices, loop.batches
    n = len(indices)
    pad = round(recipe.pad * data.resolution)
    norm = loop.stats(state.mean, state.std)
    # Augmentation draws from a copy; a step's draws reach the state when it commits.
    aug = torch.Generator()
    aug.set_state(state.aug_gen.get_state())
    ahead: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def prepare(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = augment(loop.images(data, idx), aug, pad, recipe.flip)
        return loop.inputs(images, norm), dev.labels(data.train_y[idx]), aug.get_state()

    def train_step(epoch: int, b: int, take: Callable[[int], torch.Tensor]) -> int:
        nonlocal ahead
        torch.set_rng_state(state.rng)
        dev.seed_step(mix(recipe.seed, "dropout", state.step))
        x, y, aug_after = ahead if ahead is not None else prepare(take(b))
        lr = loop.set_lr(state.step)
        with dev.autocast():
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        if not dev.is_cuda and not torch.isfinite(loss):
            raise _diverged(loss.item(), epoch, b, lr)
        state.optimizer.zero_grad(set_to_none=True)
        loop.updater.backward(loss)
        loop.updater.step()
        # On CUDA the step runs while the next batch is augmented and copied.
        ahead = None
        if dev.is_cuda and b + 1 < batches:
            ahead = prepare(take(b + 1))
        value = loss.item()
        if not math.isfinite(value):
            raise _diverged(value, epoch, b, lr)
        # Commit the step: from here on, an interrupt leaves a consistent state.
        state.rng = torch.get_rng_state()
        state.aug_gen.set_state(aug_after)
        loop.updater.commit(state)
        loss_sum, correct, seen = state.epoch_stats
        state.epoch_stats = [
            loss_sum + value * len(y),
            correct + int((logits.argmax(1) == y).sum()),
            seen + len(y),
        ]
        return len(y)

    def so_far() -> dict[str, float]:
        """The epoch's training statistics so far (the record's, at its end)."""
        loss_sum, correct, seen = state.epoch_stats
        return {"train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1)}

    def report(at: Position, rate: float, record: dict[str, float] | None) -> None:
        assert on_progress is not None  # run reports only when given this
        now = so_far() if record is None else record
        loss, top1, val = now["train_loss"], now["train_top1"], now.get("val_top1")
        on_progress(TrainProgress(*at, loss, top1, rate, val))

    def end_epoch(epoch: int) -> dict[str, float]:
        if recipe.bn_images:
            pick = torch.linspace(0, n - 1, min(recipe.bn_images, n)).long()
            recalibrate_bn(
                model, train_batch(data, indices[pick]), state.mean, state.std, device=dev
            )
        result = evaluate(
            model, data.val_x, data.val_y, state.classes, state.mean, state.std, device=dev
        )
        state.last_eval = result
        return {
            "epoch": epoch + 1,
            **so_far(),
            "val_loss": result.loss,
            "val_top1": result.top1,
            "val_top5": result.top5,
            "train_seconds": state.train_seconds,
        }

    loop.run(train_step, end_epoch, report if on_progress else None)
    return state


def train_and_evaluate(
    spec: ArchSpec,
    data: ImageData | str = "digits",
    recipe: Recipe | None = None,
    *,
    seed: int | None = None,
    threads: int | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    checkpoint: str | Path | None = None,
    device: TrainDevice | str | None = None,
) -> TrainResult:
    """Train ``spec`` from scratch with ``recipe`` (default: the ``search`` preset) and
    return its validation accuracy. The entry point for a search. With ``checkpoint``,
    the trained state is also written there (``nasctl eval`` / ``export`` read it).

    ``data`` may be a loaded ImageData or anything ``load_data`` accepts (loaded at the
    spec's resolution). ``seed`` overrides ``recipe.seed``; ``threads`` sets torch's
    intra-op threads for the call; ``device`` is where it trains (default the CPU at
    fp32; see ``resolve_device``). Raises TrainingDiverged on a NaN/inf loss.
    """
    dev = resolve_device(device)
    recipe = recipe or PRESETS["search"]
    if seed is not None:
        recipe = recipe.replace(seed=seed)
    if not isinstance(data, ImageData):
        data = load_data(data, spec.resolution)
    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise RecipeError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        state = fit(new_state(spec, data, recipe), data, on_progress=on_progress, device=dev)
    finally:
        torch.set_num_threads(previous)
    if checkpoint is not None:
        save_checkpoint(state, checkpoint)
    final = state.last_eval or evaluate(
        state.model, data.val_x, data.val_y, data.classes, data.mean, data.std, device=dev
    )
    last = state.history[-1]
    return TrainResult(
        top1=final.top1,
        top5=final.top5,
        loss=final.loss,
        train_loss=last["train_loss"],
        train_seconds=state.train_seconds,
        images_per_second=state.images / max(state.train_seconds, 1e-9),
        epochs=recipe.epochs,
        per_class=final.per_class,
        history=state.history,
        device=state.device,
    )


# --- checkpoints ----------------------------------------------------------------------


def save_checkpoint(state: TrainState, path: str | Path) -> Path:
    """Write everything ``load_checkpoint`` needs to resume or evaluate, atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": state.spec.to_dict(),
        "recipe": state.recipe.to_dict(),
        "data": {
            "name": state.data_name,
            "classes": list(state.classes),
            "mean": list(state.mean),
            "std": list(state.std),
        },
        "model": state.model.state_dict(),
        "aug_gen": state.aug_gen.get_state(),
        "rng": state.rng,
    }
    return write_state(state, payload, path)


def load_checkpoint(path: str | Path) -> TrainState:
    """Read a checkpoint written by ``save_checkpoint``; refuses other files clearly."""
    payload = read_file(path, CHECKPOINT_FORMAT, "checkpoint")
    spec = ArchSpec.from_dict(payload["spec"])
    recipe = Recipe.from_dict(payload["recipe"])
    model = build_model(spec, seed=0)  # weights are overwritten next
    model.load_state_dict(payload["model"])
    gen = torch.Generator()
    gen.set_state(payload["aug_gen"])
    info = payload["data"]
    return TrainState(
        spec=spec,
        recipe=recipe,
        data_name=info["name"],
        classes=tuple(info["classes"]),
        mean=tuple(info["mean"]),
        std=tuple(info["std"]),
        model=model,
        aug_gen=gen,
        rng=payload["rng"],
        **resumed(payload, model, recipe),
    )

"""The training loop that ``fit`` and ``fit_supernet`` share: seeded streams, the
training subset and batch order, augmentation, the optimizer and its update (under
fp16, through the gradient scaler), the epoch/step driver with its counters, and the
parts of a checkpoint file both write.

A caller supplies what one step trains (``train_step``) and what an epoch ends with
(``end_epoch``); the driver owns the order of epoch e (a generator seeded with
(seed, e)), the counters a resumed run continues from, and the step's timing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from estimators._device import TrainDevice, move_optimizer_state
from estimators._images import ImageData
from estimators._options import Optimizer
from estimators._recipe import Recipe
from search_space import NasctlError

__all__ = [
    "Loop",
    "LoopState",
    "Position",
    "Updater",
    "augment",
    "batches_per_epoch",
    "crop_flip",
    "lr_at",
    "make_optimizer",
    "mix",
    "normalise",
    "param_groups",
    "read_file",
    "resumed",
    "stats",
    "train_batch",
    "train_indices",
    "write_file",
    "write_state",
]


def mix(seed: int, purpose: str, epoch: int = 0) -> int:
    """Independent stream per purpose and epoch (or step) from one user seed (stable
    across runs, unlike ``hash``)."""
    h = seed * 1_000_003 + epoch * 7919 + sum(ord(c) * 31**i for i, c in enumerate(purpose))
    return h % (2**63 - 1)


def lr_at(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Linear warm-up from lr/steps to lr, then half-cosine to zero (per step)."""
    total = recipe.epochs * steps_per_epoch
    warmup = min(total - 1, round(recipe.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * recipe.lr * (1 + math.cos(math.pi * progress))


def train_indices(n: int, recipe: Recipe) -> torch.Tensor:
    """The training images used: all ``n``, or a seeded sorted subset of ``train_images``."""
    if recipe.train_images is None or recipe.train_images >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(mix(recipe.seed, "subset"))
    return torch.randperm(n, generator=gen)[: recipe.train_images].sort().values


def train_batch(data: ImageData, indices: torch.Tensor) -> torch.Tensor:
    """The uint8 NCHW training images at ``indices``: the one place the loops read
    training images, so a store that does not hold the split in memory (``DiskImages``)
    plugs in here."""
    return data.train_x[indices]


def batches_per_epoch(train_images: int, recipe: Recipe) -> int:
    """Steps per epoch: the ragged last batch is dropped (BatchNorm needs > 1 image)."""
    n = min(train_images, recipe.train_images or train_images)
    return n // min(recipe.batch_size, n)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only: none on BatchNorm and biases (``ndim <= 1``)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = param_groups(model, recipe.weight_decay)
    if recipe.optimizer is Optimizer.ADAMW:
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)


# --- augmentation ----------------------------------------------------------------------


def crop_flip(
    images: torch.Tensor,
    rows: torch.Tensor | None,
    cols: torch.Tensor | None,
    pad: int,
    flips: torch.Tensor | None,
) -> torch.Tensor:
    """Crop each uint8 NCHW image at offset (``rows``, ``cols``) of its ``pad``-padded
    copy, then mirror those with ``flips``; one gather, where ``images`` are."""
    n, _, h, w = images.shape
    at = images.device
    if pad > 0 and rows is not None and cols is not None:
        padded = F.pad(images, (pad, pad, pad, pad))
        r = (rows[:, None] + torch.arange(h, device=at))[:, :, None]  # n, h, 1
        c = (cols[:, None] + torch.arange(w, device=at))[:, None, :]  # n, 1, w
        batch = torch.arange(n, device=at)[:, None, None]
        images = padded.permute(0, 2, 3, 1)[batch, r, c].permute(0, 3, 1, 2)
    if flips is not None:
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
    return images


def augment(
    images: torch.Tensor, generator: torch.Generator, pad: int, flip: bool = True
) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and horizontal flip on a uint8 NCHW batch,
    vectorised (one gather), so augmentation costs little next to the model. The offsets
    and flips are drawn on the CPU from ``generator``; the gather runs where ``images``
    are (on a GPU the same draws give the same crops)."""
    n, at = len(images), images.device
    rows = cols = flips = None
    if pad > 0:
        rows = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(at)
        cols = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(at)
    if flip:
        flips = (torch.rand(n, generator=generator) < 0.5).to(at)
    return crop_flip(images, rows, cols, pad, flips)


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255).sub_(mean).div_(std).contiguous()


def stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(mean, device=device).view(1, 3, 1, 1),
        torch.tensor(std, device=device).view(1, 3, 1, 1),
    )


# --- the step driver -------------------------------------------------------------------


class LoopState(Protocol):
    """The counters both training states carry (and checkpoint)."""

    optimizer: torch.optim.Optimizer
    epoch: int
    batch: int
    step: int
    history: list[dict[str, float]]
    train_seconds: float
    images: int
    epoch_stats: list[float]
    device: str
    scaler_state: dict[str, Any] | None

    @property
    def done(self) -> bool: ...


class Updater:
    """One optimizer update per step on ``dev``: the step's learning rate, backward (the
    loss scaled under fp16), the step, and the scaler's state for an exact resume. Moves
    the optimizer state to the device and records the device's label on ``state``."""

    def __init__(self, state: LoopState, dev: TrainDevice) -> None:
        self.optimizer = state.optimizer
        move_optimizer_state(self.optimizer, dev.device)
        self.scaler = dev.scaler()
        if self.scaler is not None and state.scaler_state:
            self.scaler.load_state_dict(state.scaler_state)
        state.device = dev.label

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def commit(self, state: LoopState) -> None:
        if self.scaler is not None:
            state.scaler_state = self.scaler.state_dict()


class Position(NamedTuple):
    """Where a progress report stands: the leading fields of ``TrainProgress`` and
    ``SupernetProgress`` (epoch 0-based; batches done in it)."""

    epoch: int
    epochs: int
    batch: int
    batches: int


class Loop:
    """One call of ``fit`` or ``fit_supernet``: the model placed on ``dev`` with its
    optimizer's ``Updater``, the training subset of ``train_images`` images and the steps
    per epoch, what a step reads through it (its learning rate, its images on the
    device, its normalised input), and ``run``, the epoch/step driver."""

    def __init__(
        self,
        state: LoopState,
        model: nn.Module,
        dev: TrainDevice,
        recipe: Recipe,
        train_images: int,
    ) -> None:
        dev.place(model)
        self.state, self.model, self.dev, self.recipe = state, model, dev, recipe
        self.updater = Updater(state, dev)
        self.indices = train_indices(train_images, recipe)
        self.batches = batches_per_epoch(len(self.indices), recipe)

    def set_lr(self, step: int) -> float:
        """Set the learning rate of step ``step`` (``lr_at``) and return it."""
        lr = lr_at(step, self.batches, self.recipe)
        self.updater.set_lr(lr)
        return lr

    def stats(
        self, mean: tuple[float, ...], std: tuple[float, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalisation tensors on the device, shaped for an NCHW batch."""
        return stats(mean, std, self.dev.device)

    def images(self, data: ImageData, indices: torch.Tensor) -> torch.Tensor:
        """The uint8 training images at ``indices`` on the device (a quarter of float's
        bytes cross), to be augmented there."""
        return self.dev.batch(train_batch(data, indices))

    def inputs(self, images: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Augmented uint8 ``images`` as the model's input: normalised by ``norm`` (from
        ``stats``), in the device's memory layout."""
        return self.dev.layout(normalise(images, *norm))

    def run(
        self,
        train_step: Callable[[int, int, Callable[[int], torch.Tensor]], int],
        end_epoch: Callable[[int], dict[str, float]],
        report: Callable[[Position, float, dict[str, float] | None], None] | None,
    ) -> None:
        """Train from the state's counters up to ``recipe.epochs``.

        ``train_step(epoch, b, take)`` trains batch ``b`` of this epoch's seeded order
        (``take(k)``: the training-image indices of batch k, so a step may prepare the
        next one), commits its own statistics and returns the batch's size; the driver
        then counts the step and calls ``report(position, images_per_second, None)``.
        ``end_epoch(epoch)`` returns the epoch's record for ``state.history``; the
        counters move to the next epoch before ``report(position, images_per_second,
        record)`` (the epoch's rate). Global RNG state is restored on return
        (``fork_rng``); ``dev.session()`` sets the device's flags.
        """
        state, model, recipe, indices = self.state, self.model, self.recipe, self.indices
        n = len(indices)
        batch_size = min(recipe.batch_size, n)
        with torch.random.fork_rng(devices=[]), self.dev.session():
            while not state.done:
                epoch = state.epoch
                gen = torch.Generator().manual_seed(mix(recipe.seed, "order", epoch))
                order = indices[torch.randperm(n, generator=gen)]
                model.train()

                def take(k: int, order: torch.Tensor = order) -> torch.Tensor:
                    return order[k * batch_size : (k + 1) * batch_size]

                started = time.perf_counter()
                for b in range(state.batch, self.batches):
                    images = train_step(epoch, b, take)
                    # The step is committed: an interrupt from here on leaves a consistent
                    # state.
                    state.batch, state.step = b + 1, state.step + 1
                    state.images += images
                    elapsed = time.perf_counter() - started
                    state.train_seconds += elapsed
                    started = time.perf_counter()
                    if report:
                        at = Position(epoch, recipe.epochs, b + 1, self.batches)
                        report(at, images / max(elapsed, 1e-9), None)
                record = end_epoch(epoch)
                state.history.append(record)
                state.epoch, state.batch = epoch + 1, 0
                state.epoch_stats = [0.0] * len(state.epoch_stats)
                if report:
                    at = Position(epoch, recipe.epochs, self.batches, self.batches)
                    report(at, state.images / max(state.train_seconds, 1e-9), record)


# --- the file --------------------------------------------------------------------------


def _counters(state: LoopState) -> dict[str, Any]:
    """What a file needs, besides the model, to resume ``state`` exactly."""
    return {
        "optimizer": state.optimizer.state_dict(),
        "epoch": state.epoch,
        "batch": state.batch,
        "step": state.step,
        "history": state.history,
        "train_seconds": state.train_seconds,
        "images": state.images,
        "epoch_stats": state.epoch_stats,
        "device": state.device,
        "scaler": state.scaler_state,
    }


def write_state(state: LoopState, payload: dict[str, Any], path: str | Path) -> Path:
    """``payload`` (the format, the model and what else the caller's state holds) and
    the loop's counters and optimizer, written atomically (``write_file``)."""
    return write_file({**payload, **_counters(state)}, path)


def resumed(payload: dict[str, Any], model: nn.Module, recipe: Recipe) -> dict[str, Any]:
    """The optimizer (for ``model``, its state restored) and the counters of a file
    ``write_state`` wrote, as keyword arguments of a state. Files from before devices
    were recorded trained on the CPU at fp32."""
    optimizer = make_optimizer(model, recipe)
    optimizer.load_state_dict(payload["optimizer"])
    return {
        "optimizer": optimizer,
        "epoch": payload["epoch"],
        "batch": payload["batch"],
        "step": payload["step"],
        "history": list(payload["history"]),
        "train_seconds": payload["train_seconds"],
        "images": payload["images"],
        "epoch_stats": list(payload["epoch_stats"]),
        "device": str(payload.get("device", "cpu/fp32")),
        "scaler_state": payload.get("scaler"),
    }


def write_file(payload: dict[str, Any], path: str | Path) -> Path:
    """Save atomically: a temporary file renamed over the old one, so a crash leaves the
    previous file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_file(
    path: str | Path, fmt: str, what: str, error: type[NasctlError] = NasctlError
) -> dict[str, Any]:
    """The payload of a file ``write_file`` wrote in format ``fmt``; anything else is
    refused with one sentence naming ``what`` it should have been."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets one sentence
        raise error(f"{what} {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise error(f"{str(path)!r} is not a nasctl {what} ({fmt})")
    return payload

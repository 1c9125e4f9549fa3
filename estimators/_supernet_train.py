"""Training a supernet once with the sandwich rule, and its file (save, resume, load).

Each step trains, on one batch of images, the largest sub-network, the smallest and
``random_subnets`` random ones, summing their gradients into one update (the sandwich
rule, Yu & Huang 2019 sec. 3.2; BigNAS, Yu et al. 2020, sec. 3.1). With ``distill`` the
others learn the largest's predictions on the same images (in-place distillation, same
papers) instead of the labels. Each sub-network sees the batch at its own resolution,
loaded as standalone training loads it; the random crop and flip of an image are the
same fractions of the image at every resolution.

Randomness is owned and per step: the sub-networks, the augmentation and dropout of step
``t`` are drawn from generators seeded with (seed, t), and the batch order of epoch e
from (seed, e), so a run interrupted and resumed gives the same weights as one that was
not, with nothing but counters in the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from estimators._device import TrainDevice, resolve_device
from estimators._images import ImageData
from estimators._loop import (
    Loop,
    Position,
    crop_flip,
    make_optimizer,
    mix,
    read_file,
    resumed,
    write_state,
)
from estimators._recipe import SupernetRecipe, TrainingDiverged
from estimators._supernet import DataIdentity, Supernet, SupernetError, data_identity
from search_space import ArchSpec

__all__ = [
    "SUPERNET_FORMAT",
    "SupernetProgress",
    "SupernetRecipe",
    "SupernetState",
    "augment_views",
    "fit_supernet",
    "load_supernet",
    "load_supernet_state",
    "new_supernet_state",
    "save_supernet",
]

SUPERNET_FORMAT = "nasctl-supernet/1"


@dataclass(frozen=True)
class SupernetProgress:
    """One report per step, and one per finished epoch (``epoch_end``, with the largest
    and smallest sub-networks' validation top-1 when ``bn_images`` > 0)."""

    epoch: int  # 0-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int
    step: int  # steps done in all
    loss: float  # the largest sub-network's mean training loss so far this epoch
    subnet_loss: float  # the other sub-networks' mean loss so far this epoch
    images_per_second: float  # batch images per second (each image counted once)
    largest_top1: float | None = None
    smallest_top1: float | None = None
    epoch_end: bool = False


@dataclass
class SupernetState:
    """A supernet being trained: mutated in place after every step, so after a
    KeyboardInterrupt the caller holds the last completed step and can save it."""

    supernet: Supernet
    recipe: SupernetRecipe
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    batch: int = 0
    batches: int = 0  # steps per epoch, known once fit has started
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    images: int = 0
    epoch_stats: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    #: ``TrainDevice.label`` of the latest training ("cpu/fp32" for files from before).
    device: str = "cpu/fp32"
    #: fp16's gradient scaler (its scale and growth counter), for an exact resume.
    scaler_state: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.epoch >= self.recipe.base.epochs


def new_supernet_state(
    space_text: str, data: ImageData, recipe: SupernetRecipe, *, data_seed: int
) -> SupernetState:
    """A fresh supernet for ``space_text`` and the classes of ``data`` (loaded with split
    seed ``data_seed``: it is recorded, and scoring refuses another split)."""
    supernet = Supernet(
        space_text,
        data.num_classes,
        seed=recipe.base.seed,
        trained_on=data_identity(data, data_seed),
    )
    return SupernetState(supernet, recipe, make_optimizer(supernet, recipe.base))


def augment_views(
    images: Mapping[int, torch.Tensor], generator: torch.Generator, pad: float, flip: bool
) -> dict[int, torch.Tensor]:
    """Random crop (zero padding ``pad`` x resolution) and horizontal flip of the same
    uint8 NCHW batch at several resolutions, with the same offsets as fractions of each
    resolution and the same flips, so every sub-network sees the same view of an image
    (what ``augment`` does at one resolution)."""
    first = next(iter(images.values()))
    n, at = len(first), first.device  # drawn on the CPU, gathered where the images are
    fractions = torch.rand(n, 2, generator=generator).to(at)
    flips = (torch.rand(n, generator=generator) < 0.5).to(at)
    out = {}
    for res, batch in images.items():
        p = round(pad * res)
        offsets = (fractions * (2 * p + 1)).long().clamp_(max=2 * p)
        out[res] = crop_flip(batch, offsets[:, 0], offsets[:, 1], p, flips if flip else None)
    return out


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's probabilities (in-place distillation)."""
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def _check_data(state: SupernetState, data: Mapping[int, ImageData]) -> list[int]:
    resolutions = list(state.supernet.space.resolutions)
    missing = [r for r in resolutions if r not in data]
    if missing:
        raise SupernetError(
            f"data must be loaded at every resolution of the space ({resolutions}); "
            f"missing {missing}"
        )
    for res in resolutions:
        state.supernet.check_data(data[res])
        if data[res].resolution != res:
            raise SupernetError(f"data[{res}] was loaded at {data[res].resolution}x")
    return resolutions


def subnets_at(supernet: Supernet, recipe: SupernetRecipe, step: int) -> list[ArchSpec]:
    """The sandwich of step ``step``: largest, smallest, then the random ones."""
    rng = np.random.default_rng([recipe.base.seed, step])
    specs = [supernet.largest(rng), supernet.smallest(rng)]
    specs.extend(supernet.sample(rng) for _ in range(recipe.random_subnets))
    return specs


def fit_supernet(
    state: SupernetState,
    data: Mapping[int, ImageData],
    *,
    on_progress: Callable[[SupernetProgress], None] | None = None,
    device: TrainDevice | str | None = None,
) -> SupernetState:
    """Train ``state`` up to ``recipe.epochs`` from wherever it stands (resume).

    ``data`` maps every resolution of the space to the data loaded at it. Raises
    TrainingDiverged on a NaN/inf loss. Uses torch's current thread count. ``device``
    (default the CPU at fp32): where it trains; the supernet and its optimizer state are
    moved there and stay there.
    """
    resolutions = _check_data(state, data)
    dev = resolve_device(device)
    supernet, recipe = state.supernet, state.recipe
    base = recipe.base
    loop = Loop(state, supernet, dev, base, len(data[resolutions[0]].train_y))
    state.batches = loop.batches
    norms = {r: loop.stats(data[r].mean, data[r].std) for r in resolutions}

    def train_step(epoch: int, b: int, take: Callable[[int], torch.Tensor]) -> int:
        step, idx = state.step, take(b)
        y = dev.labels(data[resolutions[0]].train_y[idx])
        specs = subnets_at(supernet, recipe, step)
        needed = sorted({s.resolution for s in specs})
        views = augment_views(
            {r: loop.images(data[r], idx) for r in needed},
            torch.Generator().manual_seed(mix(base.seed, "augment", step)),
            base.pad,
            base.flip,
        )
        x = {r: loop.inputs(views[r], norms[r]) for r in needed}
        lr = loop.set_lr(step)
        torch.manual_seed(mix(base.seed, "dropout", step))
        state.optimizer.zero_grad(set_to_none=True)
        pending: list[torch.Tensor] = []  # CUDA: read after the step (one sync)
        teacher: torch.Tensor | None = None
        for i, spec in enumerate(specs):
            with dev.autocast():
                logits = supernet(x[spec.resolution], spec)
                if teacher is None or not recipe.distill:
                    loss = F.cross_entropy(logits, y, label_smoothing=base.label_smoothing)
                else:
                    loss = _soft_cross_entropy(logits, teacher)
            if not dev.is_cuda and not torch.isfinite(loss):
                raise _diverged(loss.item(), i, epoch, b, lr)
            loop.updater.backward(loss)
            if i == 0:
                teacher = logits.detach().float().softmax(1)
            pending.append(loss.detach())
        loop.updater.step()
        losses = [float(v) for v in pending]
        for i, value in enumerate(losses):
            if not math.isfinite(value):
                raise _diverged(value, i, epoch, b, lr)
        # Commit the step: from here on, an interrupt leaves a consistent state.
        loop.updater.commit(state)
        totals = state.epoch_stats
        totals[0] += losses[0] * len(y)
        totals[1] += sum(losses[1:]) / max(len(losses) - 1, 1) * len(y)
        totals[2] += len(y)
        return len(y)

    def so_far() -> dict[str, float]:
        """The epoch's mean losses so far (the record's, at its end)."""
        loss, subnet_loss, seen = state.epoch_stats[:3]
        return {"train_loss": loss / max(seen, 1), "subnet_loss": subnet_loss / max(seen, 1)}

    def report(at: Position, rate: float, record: dict[str, float] | None) -> None:
        assert on_progress is not None  # run reports only when given this
        now = so_far() if record is None else record
        largest, smallest = now.get("largest_top1"), now.get("smallest_top1")
        losses = now["train_loss"], now["subnet_loss"]
        end = record is not None
        on_progress(SupernetProgress(*at, state.step, *losses, rate, largest, smallest, end))

    def end_epoch(epoch: int) -> dict[str, float]:
        record = {"epoch": epoch + 1, **so_far(), "train_seconds": state.train_seconds}
        if base.bn_images:
            recal = max(1, math.ceil(base.bn_images / 128))
            for name, spec in (
                ("largest_top1", supernet.largest()),
                ("smallest_top1", supernet.smallest()),
            ):
                record[name] = supernet.score(
                    spec, data[spec.resolution], recal_batches=recal, seed=base.seed, device=dev
                )
            supernet.train()
        return record

    loop.run(train_step, end_epoch, report if on_progress else None)
    return state


def _diverged(value: float, which: int, epoch: int, batch: int, lr: float) -> TrainingDiverged:
    what = "largest" if which == 0 else "smallest" if which == 1 else "a random"
    return TrainingDiverged(
        f"supernet loss ({what} sub-network) became {value} at epoch {epoch + 1}, batch "
        f"{batch + 1} (lr {lr:.3g}): lower the learning rate"
    )


# --- the file ---------------------------------------------------------------------------


def save_supernet(state: SupernetState, path: str | Path) -> Path:
    """Write the supernet and everything a resumed run needs, atomically (a temporary
    file renamed over the old one: a crash leaves the previous file whole)."""
    supernet = state.supernet
    payload = {
        "format": SUPERNET_FORMAT,
        "space_text": supernet.space_text,
        "num_classes": supernet.num_classes,
        "trained_on": supernet.trained_on.to_dict() if supernet.trained_on else None,
        "recipe": state.recipe.to_dict(),
        "model": supernet.state_dict(),
        "batches": state.batches,
    }
    return write_state(state, payload, path)


def _read(path: str | Path) -> dict[str, Any]:
    return read_file(path, SUPERNET_FORMAT, "supernet file", SupernetError)


def _supernet_of(payload: dict[str, Any], where: str) -> Supernet:
    trained = payload["trained_on"]
    supernet = Supernet(
        payload["space_text"],
        payload["num_classes"],
        trained_on=DataIdentity.from_dict(trained) if trained else None,
    )
    try:
        supernet.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise SupernetError(f"{where} does not match its own space: {exc}") from None
    batches = payload["batches"]
    supernet.epochs_done = payload["epoch"] + (payload["batch"] / batches if batches else 0.0)
    supernet.train_seconds = float(payload["train_seconds"])
    supernet.trained_device = str(payload.get("device", "cpu/fp32"))
    return supernet


def load_supernet_state(path: str | Path) -> SupernetState:
    """Read a file written by ``save_supernet``, to resume training it."""
    payload = _read(path)
    recipe = SupernetRecipe.from_dict(payload["recipe"])
    supernet = _supernet_of(payload, repr(str(path)))
    return SupernetState(
        supernet=supernet,
        recipe=recipe,
        batches=payload["batches"],
        **resumed(payload, supernet, recipe.base),
    )


def load_supernet(path: str | Path) -> Supernet:
    """The supernet of a file written by ``save_supernet``, in eval mode, ready to
    ``score`` (finished or not: ``epochs_done`` says how far it was trained)."""
    return _supernet_of(_read(path), repr(str(path))).eval()

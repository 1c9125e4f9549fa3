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
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from estimators._data import ImageData
from estimators._device import TrainDevice, move_optimizer_state, resolve_device
from estimators._supernet import DataIdentity, Supernet, SupernetError, data_identity
from estimators._training import (
    Recipe,
    RecipeError,
    TrainingDiverged,
    _lr_at,
    _make_optimizer,
    _mix,
    _normalise,
    _stats,
    train_batch,
)
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
class SupernetRecipe:
    """How a supernet is trained. The optimizer fields mean what they mean in
    ``Recipe`` (SGD with Nesterov momentum, linear warm-up then cosine, no decay on
    BatchNorm and biases, label smoothing for the largest sub-network).

    ``random_subnets``: random sub-networks per step besides the largest and the
    smallest (BigNAS uses 2). ``distill``: they learn the largest's soft predictions.
    ``train_images`` caps the training set (a seeded subset). ``bn_images``: after each
    epoch the largest and smallest are scored with BatchNorm recalibrated on this many
    training images (0: no per-epoch evaluation).
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.3
    label_smoothing: float = 0.1
    pad: float = 0.125
    flip: bool = True
    train_images: int | None = None
    bn_images: int = 1024
    random_subnets: int = 2
    distill: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _ = self.base  # validates the shared fields, naming them recipe.<field>
        n = self.random_subnets
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise RecipeError(f"recipe.random_subnets must be an integer >= 0, got {n!r}")
        if not isinstance(self.distill, bool):
            raise RecipeError(f"recipe.distill must be true or false, got {self.distill!r}")

    @property
    def base(self) -> Recipe:
        """The same optimizer, schedule and augmentation as a standalone ``Recipe``."""
        shared = {f.name for f in fields(Recipe)} & {f.name for f in fields(self)}
        return Recipe(**{name: getattr(self, name) for name in shared})

    def replace(self, **changes: Any) -> SupernetRecipe:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetRecipe:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise RecipeError(f"unknown supernet recipe field(s): {', '.join(unknown)}")
        return cls(**data)


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
        return self.epoch >= self.recipe.epochs


def new_supernet_state(
    space_text: str, data: ImageData, recipe: SupernetRecipe, *, data_seed: int
) -> SupernetState:
    """A fresh supernet for ``space_text`` and the classes of ``data`` (loaded with split
    seed ``data_seed``: it is recorded, and scoring refuses another split)."""
    supernet = Supernet(
        space_text,
        data.num_classes,
        seed=recipe.seed,
        trained_on=data_identity(data, data_seed),
    )
    return SupernetState(supernet, recipe, _make_optimizer(supernet, recipe.base))


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
        if p > 0:
            offsets = (fractions * (2 * p + 1)).long().clamp_(max=2 * p)
            padded = F.pad(batch, (p, p, p, p))
            h, w = batch.shape[-2:]
            rows = (offsets[:, 0, None] + torch.arange(h, device=at))[:, :, None]
            cols = (offsets[:, 1, None] + torch.arange(w, device=at))[:, None, :]
            index = torch.arange(n, device=at)[:, None, None]
            batch = padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)
        if flip:
            batch = torch.where(flips[:, None, None, None], batch.flip(3), batch)
        out[res] = batch
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


def _train_indices(n: int, recipe: SupernetRecipe) -> torch.Tensor:
    if recipe.train_images is None or recipe.train_images >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(_mix(recipe.seed, "subset"))
    return torch.randperm(n, generator=gen)[: recipe.train_images].sort().values


def steps_per_epoch(train_images: int, recipe: SupernetRecipe) -> int:
    """Steps per epoch: the ragged last batch is dropped (BatchNorm needs > 1 image)."""
    n = min(train_images, recipe.train_images or train_images)
    return n // min(recipe.batch_size, n)


def subnets_at(supernet: Supernet, recipe: SupernetRecipe, step: int) -> list[ArchSpec]:
    """The sandwich of step ``step``: largest, smallest, then the random ones."""
    rng = np.random.default_rng([recipe.seed, step])
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
    supernet, recipe, opt = state.supernet, state.recipe, state.optimizer
    dev.place(supernet)
    move_optimizer_state(opt, dev.device)
    scaler = dev.scaler()
    if scaler is not None and state.scaler_state:
        scaler.load_state_dict(state.scaler_state)
    state.device = dev.label
    base = recipe.base
    n_train = len(data[resolutions[0]].train_y)
    indices = _train_indices(n_train, recipe)
    n = len(indices)
    batch_size = min(recipe.batch_size, n)
    batches = steps_per_epoch(n, recipe)
    state.batches = batches
    norms = {r: _stats(data[r].mean, data[r].std, dev.device) for r in resolutions}
    with torch.random.fork_rng(devices=[]), dev.session():
        while not state.done:
            epoch = state.epoch
            order_gen = torch.Generator().manual_seed(_mix(recipe.seed, "order", epoch))
            order = indices[torch.randperm(n, generator=order_gen)]
            supernet.train()
            started = time.perf_counter()
            for b in range(state.batch, batches):
                step = state.step
                idx = order[b * batch_size : (b + 1) * batch_size]
                y = dev.labels(data[resolutions[0]].train_y[idx])
                specs = subnets_at(supernet, recipe, step)
                needed = sorted({s.resolution for s in specs})
                views = augment_views(
                    {r: dev.batch(train_batch(data[r], idx)) for r in needed},
                    torch.Generator().manual_seed(_mix(recipe.seed, "augment", step)),
                    recipe.pad,
                    recipe.flip,
                )
                x = {r: dev.layout(_normalise(views[r], *norms[r])) for r in needed}
                lr = _lr_at(step, batches, base)
                for group in opt.param_groups:
                    group["lr"] = lr
                torch.manual_seed(_mix(recipe.seed, "dropout", step))
                opt.zero_grad(set_to_none=True)
                pending: list[torch.Tensor] = []  # CUDA: read after the step (one sync)
                teacher: torch.Tensor | None = None
                for i, spec in enumerate(specs):
                    with dev.autocast():
                        logits = supernet(x[spec.resolution], spec)
                        if teacher is None or not recipe.distill:
                            loss = F.cross_entropy(
                                logits, y, label_smoothing=recipe.label_smoothing
                            )
                        else:
                            loss = _soft_cross_entropy(logits, teacher)
                    if not dev.is_cuda and not torch.isfinite(loss):
                        raise _diverged(loss.item(), i, epoch, b, lr)
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                    if i == 0:
                        teacher = logits.detach().float().softmax(1)
                    pending.append(loss.detach())
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                losses = [float(v) for v in pending]
                for i, value in enumerate(losses):
                    if not math.isfinite(value):
                        raise _diverged(value, i, epoch, b, lr)
                if scaler is not None:
                    state.scaler_state = scaler.state_dict()
                # Commit the step: from here on, an interrupt leaves a consistent state.
                elapsed = time.perf_counter() - started
                stats = state.epoch_stats
                stats[0] += losses[0] * len(y)
                stats[1] += sum(losses[1:]) / max(len(losses) - 1, 1) * len(y)
                stats[2] += len(y)
                state.batch, state.step = b + 1, step + 1
                state.images += len(y)
                state.train_seconds += elapsed
                started = time.perf_counter()
                if on_progress:
                    on_progress(
                        SupernetProgress(
                            epoch,
                            recipe.epochs,
                            b + 1,
                            batches,
                            state.step,
                            stats[0] / stats[2],
                            stats[1] / stats[2],
                            len(y) / max(elapsed, 1e-9),
                        )
                    )
            record: dict[str, float] = {
                "epoch": epoch + 1,
                "train_loss": state.epoch_stats[0] / max(state.epoch_stats[2], 1),
                "subnet_loss": state.epoch_stats[1] / max(state.epoch_stats[2], 1),
                "train_seconds": state.train_seconds,
            }
            if recipe.bn_images:
                recal = max(1, math.ceil(recipe.bn_images / 128))
                for name, spec in (
                    ("largest_top1", supernet.largest()),
                    ("smallest_top1", supernet.smallest()),
                ):
                    record[name] = supernet.score(
                        spec,
                        data[spec.resolution],
                        recal_batches=recal,
                        seed=recipe.seed,
                        device=dev,
                    )
                supernet.train()
            state.history.append(record)
            state.epoch, state.batch = epoch + 1, 0
            state.epoch_stats = [0.0, 0.0, 0.0, 0.0]
            if on_progress:
                on_progress(
                    SupernetProgress(
                        epoch,
                        recipe.epochs,
                        batches,
                        batches,
                        state.step,
                        record["train_loss"],
                        record["subnet_loss"],
                        state.images / max(state.train_seconds, 1e-9),
                        record.get("largest_top1"),
                        record.get("smallest_top1"),
                        epoch_end=True,
                    )
                )
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    supernet = state.supernet
    payload = {
        "format": SUPERNET_FORMAT,
        "space_text": supernet.space_text,
        "num_classes": supernet.num_classes,
        "trained_on": supernet.trained_on.to_dict() if supernet.trained_on else None,
        "recipe": state.recipe.to_dict(),
        "model": supernet.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "epoch": state.epoch,
        "batch": state.batch,
        "batches": state.batches,
        "step": state.step,
        "history": state.history,
        "train_seconds": state.train_seconds,
        "images": state.images,
        "epoch_stats": state.epoch_stats,
        "device": state.device,
        "scaler": state.scaler_state,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SupernetError(f"supernet file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets one sentence
        raise SupernetError(f"supernet file {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != SUPERNET_FORMAT:
        raise SupernetError(f"{str(path)!r} is not a nasctl supernet file ({SUPERNET_FORMAT})")
    return payload


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
    optimizer = _make_optimizer(supernet, recipe.base)
    optimizer.load_state_dict(payload["optimizer"])
    return SupernetState(
        supernet=supernet,
        recipe=recipe,
        optimizer=optimizer,
        epoch=payload["epoch"],
        batch=payload["batch"],
        batches=payload["batches"],
        step=payload["step"],
        history=list(payload["history"]),
        train_seconds=payload["train_seconds"],
        images=payload["images"],
        epoch_stats=list(payload["epoch_stats"]),
        device=str(payload.get("device", "cpu/fp32")),
        scaler_state=payload.get("scaler"),
    )


def load_supernet(path: str | Path) -> Supernet:
    """The supernet of a file written by ``save_supernet``, in eval mode, ready to
    ``score`` (finished or not: ``epochs_done`` says how far it was trained)."""
    return _supernet_of(_read(path), repr(str(path))).eval()

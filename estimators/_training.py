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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from estimators._data import ImageData, Images, load_data
from estimators._device import TrainDevice, move_optimizer_state, resolve_device
from estimators._options import Optimizer
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


class RecipeError(NasctlError):
    """A training recipe field is out of range."""


class TrainingDiverged(NasctlError):
    """The loss became NaN or infinite; ``reason`` says where, for the search to record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Recipe:
    """How to train. ``lr`` is the peak rate for ``batch_size`` (reached after a linear
    warm-up of ``warmup_epochs``, then cosine to zero, Loshchilov & Hutter 2017).
    Weight decay skips BatchNorm and biases (Goyal et al. 2017, "no bias decay").
    ``pad`` is the random-crop padding as a fraction of the resolution (4 px at 32).
    ``train_images`` caps the training set (a seeded subset) for low-fidelity runs.
    ``bn_images``: before each evaluation, BatchNorm statistics are recomputed on this
    many training images (0: keep the running averages). Short runs have too few steps
    for the running averages to settle; recalibrating is what weight-sharing NAS does
    for the same reason (OFA, Cai et al. 2020, sec. 3.2).
    """

    epochs: int = 2
    batch_size: int = 128
    optimizer: Optimizer = Optimizer.SGD
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.3
    label_smoothing: float = 0.1
    pad: float = 0.125
    flip: bool = True
    train_images: int | None = None
    bn_images: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "optimizer", Optimizer(self.optimizer))
        except ValueError:
            allowed = ", ".join(o.value for o in Optimizer)
            raise RecipeError(
                f"recipe.optimizer must be one of {allowed}, got {self.optimizer!r}"
            ) from None
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RecipeError(f"recipe.{name} must be an integer >= 1, got {value!r}")
        checks = [
            ("lr", self.lr > 0 and math.isfinite(self.lr), "> 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, "in [0, epochs]"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("pad", 0 <= self.pad < 1, "in [0, 1)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise RecipeError(f"recipe.{name} must be {rule}, got {getattr(self, name)!r}")
        if not isinstance(self.bn_images, int) or self.bn_images < 0:
            raise RecipeError(f"recipe.bn_images must be an integer >= 0, got {self.bn_images!r}")
        if self.train_images is not None and self.train_images < 2:
            raise RecipeError(f"recipe.train_images must be >= 2, got {self.train_images!r}")

    def replace(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"unknown recipe field(s): {', '.join(unknown)}")
        return cls(**data)


#: ``search``: the low-fidelity recipe a search trains each candidate with (rank, not
#: final accuracy). ``full``: the final comparison, sized so a width-1.0 baseline at 32x32
#: trains on CIFAR-10's 50,000 images in about 15 minutes on 2 cores (200-280 images/s
#: measured for the four baselines: 3 epochs = 150,000 images).
PRESETS: dict[str, Recipe] = {
    "search": Recipe(epochs=2, warmup_epochs=0.2),
    "full": Recipe(epochs=3, warmup_epochs=0.3),
}


def get_recipe(preset: str = "search", **overrides: Any) -> Recipe:
    """A preset with some fields replaced (None values are ignored)."""
    if preset not in PRESETS:
        raise RecipeError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return PRESETS[preset].replace(**{k: v for k, v in overrides.items() if v is not None})


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
class EvalResult:
    """Top-1/top-5 in [0, 1], mean loss, and per-class top-1 (class name -> accuracy)."""

    top1: float
    top5: float
    loss: float
    images: int
    per_class: dict[str, float]


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


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer is Optimizer.ADAMW:
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)


def new_state(spec: ArchSpec, data: ImageData, recipe: Recipe) -> TrainState:
    """A fresh model (initialised from ``recipe.seed``) and optimizer for ``data``."""
    _check_fit(spec, data)
    model = build_model(spec, seed=recipe.seed)
    gen = torch.Generator().manual_seed(_mix(recipe.seed, "augment"))
    rng = torch.Generator().manual_seed(_mix(recipe.seed, "dropout")).get_state()
    return TrainState(
        spec=spec,
        recipe=recipe,
        data_name=data.name,
        classes=data.classes,
        mean=data.mean,
        std=data.std,
        model=model,
        optimizer=_make_optimizer(model, recipe),
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


def _mix(seed: int, purpose: str, epoch: int = 0) -> int:
    """Independent stream per purpose and epoch from one user seed (stable across runs,
    unlike ``hash``)."""
    h = seed * 1_000_003 + epoch * 7919 + sum(ord(c) * 31**i for i, c in enumerate(purpose))
    return h % (2**63 - 1)


def augment(
    images: torch.Tensor, generator: torch.Generator, pad: int, flip: bool = True
) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and horizontal flip on a uint8 NCHW batch,
    vectorised (one gather), so augmentation costs little next to the model. The offsets
    and flips are drawn on the CPU from ``generator``; the gather runs where ``images``
    are (on a GPU the same draws give the same crops)."""
    n, _, h, w = images.shape
    at = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(at)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(at)
        rows = (oy[:, None] + torch.arange(h, device=at))[:, :, None]  # n, h, 1
        cols = (ox[:, None] + torch.arange(w, device=at))[:, None, :]  # n, 1, w
        batch = torch.arange(n, device=at)[:, None, None]
        images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(at)
        images = torch.where(mask[:, None, None, None], images.flip(3), images)
    return images


def _normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255).sub_(mean).div_(std).contiguous()


def train_batch(data: ImageData, indices: torch.Tensor) -> torch.Tensor:
    """The uint8 NCHW training images at ``indices``: the one place the loops read
    training images, so a store that does not hold the split in memory plugs in here."""
    return data.train_x[indices]


def _stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(mean, device=device).view(1, 3, 1, 1),
        torch.tensor(std, device=device).view(1, 3, 1, 1),
    )


def _diverged(value: float, epoch: int, batch: int, lr: float) -> TrainingDiverged:
    return TrainingDiverged(
        f"training loss became {value} at epoch {epoch + 1}, batch {batch + 1} (lr {lr:.3g}): "
        "lower the learning rate"
    )


def _lr_at(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Linear warm-up from lr/steps to lr, then half-cosine to zero (per step)."""
    total = recipe.epochs * steps_per_epoch
    warmup = min(total - 1, round(recipe.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * recipe.lr * (1 + math.cos(math.pi * progress))


def _train_indices(data: ImageData, recipe: Recipe) -> torch.Tensor:
    n = len(data.train_y)
    if recipe.train_images is None or recipe.train_images >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(_mix(recipe.seed, "subset"))
    return torch.randperm(n, generator=gen)[: recipe.train_images].sort().values


def batches_per_epoch(train_images: int, recipe: Recipe) -> int:
    """Steps per epoch: the ragged last batch is dropped (BatchNorm needs > 1 image)."""
    n = min(train_images, recipe.train_images or train_images)
    return n // min(recipe.batch_size, n)


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
    dev = resolve_device(device)
    recipe, model, opt = state.recipe, state.model, state.optimizer
    dev.place(model)
    move_optimizer_state(opt, dev.device)
    scaler = dev.scaler()
    if scaler is not None and state.scaler_state:
        scaler.load_state_dict(state.scaler_state)
    state.device = dev.label
    indices = _train_indices(data, recipe)
    n = len(indices)
    batch_size = min(recipe.batch_size, n)
    batches = batches_per_epoch(n, recipe)
    pad = round(recipe.pad * data.resolution)
    mean, std = _stats(state.mean, state.std, dev.device)
    # Augmentation draws from a copy; a step's draws reach the state when it commits.
    aug = torch.Generator()
    aug.set_state(state.aug_gen.get_state())

    def prepare(order: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = order[b * batch_size : (b + 1) * batch_size]
        # uint8 crosses to the device (a quarter of float's bytes), augmented there.
        images = augment(dev.batch(train_batch(data, idx)), aug, pad, recipe.flip)
        return (
            dev.layout(_normalise(images, mean, std)),
            dev.labels(data.train_y[idx]),
            (aug.get_state()),
        )

    with torch.random.fork_rng(devices=[]), dev.session():
        while not state.done:
            epoch = state.epoch
            order = indices[
                torch.randperm(
                    n, generator=torch.Generator().manual_seed(_mix(recipe.seed, "order", epoch))
                )
            ]
            model.train()
            loss_sum, correct, seen = state.epoch_stats
            started = time.perf_counter()
            ahead = None
            for b in range(state.batch, batches):
                torch.set_rng_state(state.rng)
                dev.seed_step(_mix(recipe.seed, "dropout", state.step))
                x, y, aug_after = ahead if ahead is not None else prepare(order, b)
                lr = _lr_at(state.step, batches, recipe)
                for group in opt.param_groups:
                    group["lr"] = lr
                with dev.autocast():
                    logits = model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
                if not dev.is_cuda and not torch.isfinite(loss):
                    raise _diverged(loss.item(), epoch, b, lr)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                # On CUDA the step runs while the next batch is augmented and copied.
                ahead = prepare(order, b + 1) if dev.is_cuda and b + 1 < batches else None
                value = loss.item()
                if not math.isfinite(value):
                    raise _diverged(value, epoch, b, lr)
                # Commit the step: from here on, an interrupt leaves a consistent state.
                state.rng = torch.get_rng_state()
                state.aug_gen.set_state(aug_after)
                if scaler is not None:
                    state.scaler_state = scaler.state_dict()
                loss_sum += value * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                state.epoch_stats = [loss_sum, correct, seen]
                state.batch, state.step = b + 1, state.step + 1
                state.images += len(y)
                elapsed = time.perf_counter() - started
                state.train_seconds += elapsed
                started = time.perf_counter()
                if on_progress:
                    on_progress(
                        TrainProgress(
                            epoch,
                            recipe.epochs,
                            b + 1,
                            batches,
                            loss_sum / seen,
                            correct / seen,
                            len(y) / max(elapsed, 1e-9),
                        )
                    )
            if recipe.bn_images:
                pick = torch.linspace(0, n - 1, min(recipe.bn_images, n)).long()
                recalibrate_bn(
                    model, train_batch(data, indices[pick]), state.mean, state.std, device=dev
                )
            result = evaluate(
                model, data.val_x, data.val_y, state.classes, state.mean, state.std, device=dev
            )
            state.last_eval = result
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "train_top1": correct / max(seen, 1),
                "val_loss": result.loss,
                "val_top1": result.top1,
                "val_top5": result.top5,
                "train_seconds": state.train_seconds,
            }
            state.history.append(record)
            state.epoch, state.batch, state.epoch_stats = epoch + 1, 0, [0.0, 0.0, 0.0]
            if on_progress:
                on_progress(
                    TrainProgress(
                        epoch,
                        recipe.epochs,
                        batches,
                        batches,
                        record["train_loss"],
                        record["train_top1"],
                        state.images / max(state.train_seconds, 1e-9),
                        val_top1=result.top1,
                    )
                )
    return state


def _device_for(model: nn.Module, device: TrainDevice | str | None) -> TrainDevice:
    """``device`` resolved, or (None) the device the model's weights are on, at fp32."""
    if device is not None:
        return resolve_device(device)
    first = next(model.parameters(), None)
    if first is None or first.device.type == "cpu":
        return resolve_device("cpu")
    return TrainDevice(first.device)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    images: Images,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    count: int = 2048,
    batch_size: int = 256,
    *,
    device: TrainDevice | str | None = None,
) -> None:
    """Replace BatchNorm running statistics by exact averages over ``count`` images
    spread evenly over ``images`` (no augmentation, no dropout, no weight change).
    ``device``: where the model is (default: where its weights are, at fp32)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(images) < 2:
        return
    was_training = model.training
    model.eval()
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
        bn.train()
    dev = _device_for(model, device)
    pick = torch.linspace(0, len(images) - 1, min(count, len(images))).long()
    m, s = _stats(mean, std, dev.device)
    for start in range(0, len(pick), batch_size):
        chunk = pick[start : start + batch_size]
        if len(chunk) > 1:
            with dev.autocast():
                model(dev.layout(_normalise(dev.batch(images[chunk]), m, s)))
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: Images,
    labels: torch.Tensor,
    classes: tuple[str, ...],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 512,
    *,
    device: TrainDevice | str | None = None,
) -> EvalResult:
    """Top-1, top-5 (top-k with k = min(5, classes)), mean cross-entropy and per-class
    top-1 of ``model`` in eval mode (BatchNorm running statistics, no dropout).
    ``device``: where the model is (default: where its weights are, at fp32)."""
    dev = _device_for(model, device)
    was_training = model.training
    model.eval()
    m, s = _stats(mean, std, dev.device)
    k = min(5, len(classes))
    loss_sum, top1, top5 = 0.0, 0, 0
    hits = torch.zeros(len(classes), dtype=torch.int64)
    totals = torch.bincount(labels, minlength=len(classes))
    for start in range(0, len(labels), batch_size):
        x = dev.layout(_normalise(dev.batch(images[start : start + batch_size]), m, s))
        y = dev.labels(labels[start : start + batch_size])
        with dev.autocast():
            logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        best = logits.topk(k, dim=1).indices
        right = best[:, 0] == y
        top1 += int(right.sum())
        top5 += int((best == y[:, None]).any(1).sum())
        hits += torch.bincount(y[right], minlength=len(classes)).cpu()
    model.train(was_training)
    n = max(len(labels), 1)
    per_class = {
        c: (float(hits[i]) / float(totals[i]) if totals[i] else float("nan"))
        for i, c in enumerate(classes)
    }
    return EvalResult(top1 / n, top5 / n, loss_sum / n, len(labels), per_class)


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
        "optimizer": state.optimizer.state_dict(),
        "epoch": state.epoch,
        "batch": state.batch,
        "step": state.step,
        "aug_gen": state.aug_gen.get_state(),
        "rng": state.rng,
        "history": state.history,
        "train_seconds": state.train_seconds,
        "images": state.images,
        "epoch_stats": state.epoch_stats,
        "device": state.device,
        "scaler": state.scaler_state,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> TrainState:
    """Read a checkpoint written by ``save_checkpoint``; refuses other files clearly."""
    path = Path(path)
    if not path.is_file():
        raise NasctlError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets one sentence
        raise NasctlError(f"checkpoint {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise NasctlError(f"{str(path)!r} is not a nasctl checkpoint ({CHECKPOINT_FORMAT})")
    spec = ArchSpec.from_dict(payload["spec"])
    recipe = Recipe.from_dict(payload["recipe"])
    model = build_model(spec, seed=0)  # weights are overwritten next
    model.load_state_dict(payload["model"])
    optimizer = _make_optimizer(model, recipe)
    optimizer.load_state_dict(payload["optimizer"])
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
        optimizer=optimizer,
        epoch=payload["epoch"],
        batch=payload["batch"],
        step=payload["step"],
        aug_gen=gen,
        rng=payload["rng"],
        history=list(payload["history"]),
        train_seconds=payload["train_seconds"],
        images=payload["images"],
        epoch_stats=list(payload["epoch_stats"]),
        device=str(payload.get("device", "cpu/fp32")),
        scaler_state=payload.get("scaler"),
    )

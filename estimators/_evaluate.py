"""Scoring a trained network: top-1, top-5 and per-class accuracy on a split, and the
BatchNorm recalibration that comes before it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from estimators._device import TrainDevice, resolve_device
from estimators._images import Images
from estimators._loop import normalise, stats

__all__ = ["EvalResult", "device_for", "evaluate", "recalibrate_bn"]


@dataclass(frozen=True)
class EvalResult:
    """Top-1/top-5 in [0, 1], mean loss, and per-class top-1 (class name -> accuracy)."""

    top1: float
    top5: float
    loss: float
    images: int
    per_class: dict[str, float]


def device_for(model: nn.Module, device: TrainDevice | str | None) -> TrainDevice:
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
    dev = device_for(model, device)
    pick = torch.linspace(0, len(images) - 1, min(count, len(images))).long()
    m, s = stats(mean, std, dev.device)
    for start in range(0, len(pick), batch_size):
        chunk = pick[start : start + batch_size]
        if len(chunk) > 1:
            with dev.autocast():
                model(dev.layout(normalise(dev.batch(images[chunk]), m, s)))
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
    dev = device_for(model, device)
    was_training = model.training
    model.eval()
    m, s = stats(mean, std, dev.device)
    k = min(5, len(classes))
    loss_sum, top1, top5 = 0.0, 0, 0
    hits = torch.zeros(len(classes), dtype=torch.int64)
    totals = torch.bincount(labels, minlength=len(classes))
    for start in range(0, len(labels), batch_size):
        x = dev.layout(normalise(dev.batch(images[start : start + batch_size]), m, s))
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

"""Splitting rows into train, val and test, per class and seeded."""

from __future__ import annotations

import torch

from estimators._download import DataError

__all__ = ["TEST_SEED", "carved", "split_rows", "stratified_split"]

#: The seed of every carved test split: fixed, not ``--seed``, so that a search and a
#: comparison run with different seeds hold out the same images.
TEST_SEED = 0


def split_rows(
    labels: torch.Tensor,
    train: torch.Tensor,
    num_classes: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    *,
    val: torch.Tensor | None = None,
    test: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, val, test) row indices into ``labels``: ``val``/``test`` where the source
    has them, else carved from the ``train`` rows per class: test first with
    ``TEST_SEED`` (so it does not move with ``seed``), then val from the rest with
    ``seed``. The one function every command splits with, so a search's train and val
    never hold a comparison's test images."""
    if test is None:
        keep, held = stratified_split(
            labels[train], num_classes, TEST_SEED, test_fraction, "train/val/test"
        )
        train, test = train[keep], train[held]
    if val is None:
        keep, held = stratified_split(labels[train], num_classes, seed, val_fraction)
        train, val = train[keep], train[held]
    return train, val, test


def carved(test_fraction: float) -> str:
    return f"{test_fraction:.0%} of train, held out"


def stratified_split(
    labels: torch.Tensor,
    num_classes: int,
    seed: int,
    val_fraction: float,
    splits: str = "train/val",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, a seeded ``val_fraction`` (at least one image, never all) is carved
    out; returns (kept, carved) positions."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    need = splits.count("/") + 1
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < need:
            raise DataError(
                f"class {c} has {len(idx)} image(s); a {splits} split needs at least {need}"
            )
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values

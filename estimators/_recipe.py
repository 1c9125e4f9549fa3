"""How to train: the standalone ``Recipe`` (with its presets) and the ``SupernetRecipe``
that holds one, plus the errors training raises. Plain data, no torch: the CLI and the
search build and check recipes before anything heavy loads."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from estimators._options import Optimizer, Preset
from search_space import NasctlError

__all__ = [
    "PRESETS",
    "Recipe",
    "RecipeError",
    "SupernetRecipe",
    "TrainingDiverged",
    "get_recipe",
]


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
        _check_known(changes, _RECIPE_FIELDS, "recipe")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        _check_known(data, _RECIPE_FIELDS, "recipe")
        return cls(**data)


_RECIPE_FIELDS = frozenset(f.name for f in fields(Recipe))


def _check_known(data: dict[str, Any], known: frozenset[str], what: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"unknown {what} field(s): {', '.join(unknown)}")


#: ``search``: the low-fidelity recipe a search trains each candidate with (rank, not
#: final accuracy). ``full``: the final comparison, sized so a width-1.0 baseline at 32x32
#: trains on CIFAR-10's 50,000 images in about 15 minutes on 2 cores (200-280 images/s
#: measured for the four baselines: 3 epochs = 150,000 images).
PRESETS: dict[str, Recipe] = {
    Preset.search: Recipe(epochs=2, warmup_epochs=0.2),
    Preset.full: Recipe(epochs=3, warmup_epochs=0.3),
}


def get_recipe(preset: str = "search", **overrides: Any) -> Recipe:
    """A preset with some fields replaced (None values are ignored)."""
    if preset not in PRESETS:
        raise RecipeError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return PRESETS[preset].replace(**{k: v for k, v in overrides.items() if v is not None})


#: A supernet's default optimizer, schedule and augmentation: longer than a candidate's
#: (5 epochs), scored after each epoch with BatchNorm recalibrated on 1,024 images.
SUPERNET_BASE = Recipe(epochs=5, bn_images=1024)


@dataclass(frozen=True)
class SupernetRecipe:
    """How a supernet is trained: ``base``, a standalone ``Recipe`` (its optimizer,
    schedule, augmentation, subset and seed mean what they mean there; label smoothing
    applies to the largest sub-network), and the sandwich.

    ``random_subnets``: random sub-networks per step besides the largest and the
    smallest (BigNAS uses 2). ``distill``: they learn the largest's soft predictions.
    ``base.bn_images``: after each epoch the largest and smallest are scored with
    BatchNorm recalibrated on this many training images (0: no per-epoch evaluation).
    ``of(**fields)`` builds one from flat fields (Recipe's and these).
    """

    base: Recipe = field(default_factory=lambda: SUPERNET_BASE)
    random_subnets: int = 2
    distill: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.base, Recipe):
            raise RecipeError(f"recipe.base must be a Recipe, got {type(self.base).__name__}")
        n = self.random_subnets
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise RecipeError(f"recipe.random_subnets must be an integer >= 0, got {n!r}")
        if not isinstance(self.distill, bool):
            raise RecipeError(f"recipe.distill must be true or false, got {self.distill!r}")

    @classmethod
    def of(cls, **flat: Any) -> SupernetRecipe:
        """The default supernet recipe with flat fields replaced: ``random_subnets`` and
        ``distill`` here, every other name in ``base``."""
        return cls().replace(**flat)

    def replace(self, **changes: Any) -> SupernetRecipe:
        """Fields of this recipe or of ``base`` (by name) replaced."""
        _check_known(changes, _RECIPE_FIELDS | _OWN_FIELDS, "supernet recipe")
        own = {k: changes.pop(k) for k in list(changes) if k in _OWN_FIELDS}
        base = self.base.replace(**changes) if changes else self.base
        return replace(self, base=base, **own)

    def flat(self) -> dict[str, Any]:
        """Every field by its flat name (``base``'s and these), as the CLI's flags name them."""
        return {
            **self.base.to_dict(),
            "random_subnets": self.random_subnets,
            "distill": self.distill,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "random_subnets": self.random_subnets,
            "distill": self.distill,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetRecipe:
        """Reads ``to_dict``'s form, and the flat form of files written before the
        recipe held a ``Recipe`` (every field at the top level, no optimizer)."""
        if "base" not in data:
            return cls.of(**data)
        _check_known(data, _OWN_FIELDS | {"base"}, "supernet recipe")
        own = {k: v for k, v in data.items() if k != "base"}
        return cls(base=Recipe.from_dict(data["base"]), **own)


_OWN_FIELDS = frozenset(f.name for f in fields(SupernetRecipe)) - {"base"}

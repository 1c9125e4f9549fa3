"""A weight-sharing supernet over a search space, and how a candidate is scored with it.

One network holds every choice of a ``SearchSpace`` (once-for-all, Cai et al. 2020,
sec. 3.1; BigNAS, Yu et al. 2020): the weights of each layer are stored at the largest
size any architecture of the space gives it, and a candidate uses a slice of them:

- width and expansion: the first ``c`` channels of every conv, BatchNorm, SE and linear
  layer (the channel counts come from the candidate's ``ArchSpec``, so they are exactly
  the ones the space's make_divisible produced);
- kernel: the centre ``k x k`` of the largest depthwise kernel (OFA sec. 3.1 "elastic
  kernel size", without its learned transform matrices);
- depth: the first ``d`` blocks of each stage;
- SE on/off and activation: the SE weights are used or skipped, the activation is
  applied as chosen; neither changes which weights a block holds;
- resolution: the input is the data loaded at the candidate's resolution.

A candidate is scored by ``extract``-ing it into a standalone ``build_model(spec)``
network with the sliced weights, recomputing its BatchNorm statistics on a few training
batches (shared statistics are wrong for every sub-network; OFA sec. 3.2) and measuring
top-1 on the validation split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from estimators._device import TrainDevice, resolve_device
from estimators._elastic import ElasticBlock, ElasticConvBn, ElasticHead, SupernetError, sliced
from estimators._evaluate import evaluate, recalibrate_bn
from estimators._images import ImageData
from estimators._loop import train_batch
from search_space import (
    ArchSpec,
    BlockChoice,
    MobileNet,
    SearchSpace,
    build_model,
    cpu_seeded,
)
from search_space._builder import _init_weights
from search_space._plan import Layer, plan_part

__all__ = [
    "DataIdentity",
    "Supernet",
    "SupernetError",
    "data_identity",
]


@dataclass(frozen=True)
class DataIdentity:
    """Which data a supernet was trained on: class names, the split seed, and a digest
    of the training and validation labels (it changes with the split, so a candidate is
    never scored on images the supernet trained on)."""

    name: str
    classes: tuple[str, ...]
    seed: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "seed": self.seed,
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataIdentity:
        return cls(data["name"], tuple(data["classes"]), int(data["seed"]), data["digest"])


def data_identity(data: ImageData, seed: int) -> DataIdentity:
    """The identity of ``data`` (loaded with split ``seed``); the same at every
    resolution, since resizing changes neither the split nor the labels."""
    h = hashlib.sha256()
    h.update(repr(tuple(data.classes)).encode())
    h.update(data.train_y.numpy().tobytes())
    h.update(b"|")
    h.update(data.val_y.numpy().tobytes())
    return DataIdentity(data.name, tuple(data.classes), seed, h.hexdigest()[:20])


# --- the supernet -------------------------------------------------------------------------


class Supernet(nn.Module):
    """Every architecture of ``space`` (for ``num_classes``) in one set of weights.

    ``forward(x, spec)`` runs the sub-network ``spec`` (which must be a point of the
    space: ``SearchSpace.params_of`` says which stage each block belongs to);
    ``extract(spec)`` returns it as a standalone ``build_model(spec)`` module;
    ``score(spec, data)`` is its validation top-1 after recalibrating BatchNorm.
    ``space_text`` is the space file it was built from, ``trained_on`` the identity of
    its training data (None before training).
    """

    def __init__(
        self,
        space_text: str,
        num_classes: int,
        *,
        seed: int = 0,
        trained_on: DataIdentity | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise SupernetError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.space_text = space_text
        self.space = SearchSpace.from_text(space_text, "the supernet's space")
        self.num_classes = num_classes
        self.trained_on = trained_on
        self.epochs_done = 0.0  # set when loaded from a file
        self.train_seconds = 0.0
        self.trained_device = "cpu/fp32"  # TrainDevice.label of its training, from the file
        largest = _largest_layers(self.space, num_classes)
        blocks = [layers for name, layers in largest.items() if name.startswith("blocks.")]
        with cpu_seeded(seed):
            self.stem = ElasticConvBn(largest["stem"][""])
            self.blocks = nn.ModuleList(ElasticBlock(layers) for layers in blocks)
            self.head = ElasticHead(largest["head"])
            _init_weights(self)
        self._starts = []  # index of each stage's first block in self.blocks
        start = 0
        for stage in self.space.stages:
            self._starts.append(start)
            start += max(stage.depth)
        self._layouts: dict[ArchSpec, tuple[int, ...]] = {}

    # --- which weights a spec uses ----------------------------------------------------------

    def layout(self, spec: ArchSpec) -> tuple[int, ...]:
        """For each block of ``spec``, the index of the supernet block it uses; refuses a
        spec that is not a point of the space with a SpaceError naming the field."""
        if spec in self._layouts:
            return self._layouts[spec]
        if spec.num_classes != self.num_classes:
            raise SupernetError(
                f"num_classes must be {self.num_classes} (the supernet's), got {spec.num_classes}"
            )
        params = self.space.params_of(spec)
        out: list[int] = []
        for i, start in enumerate(self._starts):
            out.extend(range(start, start + int(params[f"s{i}.depth"])))
        if len(self._layouts) > 4096:
            self._layouts.clear()
        self._layouts[spec] = tuple(out)
        return self._layouts[spec]

    def forward(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        """Logits of the sub-network ``spec`` on ``x`` (normalised, at ``spec.resolution``).

        In training mode BatchNorm uses batch statistics and updates the first channels
        of the shared running averages; those are only a placeholder (``score``
        recomputes them per sub-network)."""
        layout = self.layout(spec)
        st = spec.stem
        x = self.stem(x, st.out_channels, st.kernel, st.act)
        for index, block in zip(layout, spec.blocks, strict=True):
            x = self.blocks[index](x, block)
        return self.head(x, spec.head)

    def state_of(self, spec: ArchSpec) -> dict[str, torch.Tensor]:
        """The sliced weights and BatchNorm buffers of ``spec``, keyed like the state_dict
        of ``build_model(spec)`` (views into the supernet; ``extract`` copies them).

        Walks the spec's plan: each weighted layer takes the slice of the elastic module
        of the same name within its part (``sliced``), so what a block holds is read
        from the plan, never restated here."""
        layout = self.layout(spec)
        modules = [self.stem, *(self.blocks[i] for i in layout), self.head]
        state: dict[str, torch.Tensor] = {}
        for part, module in zip(spec.parts(), modules, strict=True):
            for layer in plan_part(part, spec.num_classes):
                if layer.has_weights:
                    elastic = _module_of(module, part.name, layer)
                    state.update(
                        {f"{layer.name}.{k}": v for k, v in sliced(elastic, layer).items()}
                    )
        return state

    @torch.no_grad()
    def extract(self, spec: ArchSpec) -> MobileNet:
        """A standalone ``build_model(spec)`` network holding the sliced weights (and the
        shared BatchNorm buffers' first channels: recalibrate before evaluating)."""
        # Built where the supernet is (every tensor is overwritten next).
        model = build_model(spec, seed=0).to(next(self.parameters()).device)
        state = {k: v.detach().clone().contiguous() for k, v in self.state_of(spec).items()}
        model.load_state_dict(state, strict=True)
        return model

    # --- scoring ---------------------------------------------------------------------------

    def check_data(self, data: ImageData) -> None:
        """Refuse data other than the training data (another split would score candidates
        on images the supernet trained on)."""
        if data.num_classes != self.num_classes:
            raise SupernetError(
                f"data {data.name!r} has {data.num_classes} classes but the supernet was "
                f"built for {self.num_classes}"
            )
        trained = self.trained_on
        if trained is None:
            return
        if tuple(data.classes) != trained.classes:
            raise SupernetError(
                f"data {data.name!r} has classes {list(data.classes)[:5]}... but the supernet "
                f"was trained on {list(trained.classes)[:5]}..."
            )
        if data_identity(data, trained.seed).digest != trained.digest:
            raise SupernetError(
                f"data {data.name!r} is not the split the supernet was trained on "
                f"({trained.name!r}, split seed {trained.seed}): load it with seed="
                f"{trained.seed}, or train a supernet on this data"
            )

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a search over another space than the one this supernet holds."""
        if space != self.space:
            raise SupernetError(
                f"the supernet was trained on space {self.space.name!r}, which differs from "
                f"the search's space {space.name!r}; train a supernet with the same --space"
            )

    @torch.no_grad()
    def score(
        self,
        spec: ArchSpec,
        data: ImageData,
        *,
        recal_batches: int = 8,
        seed: int = 0,
        batch_size: int = 128,
        val_images: int | None = None,
        device: TrainDevice | str | None = None,
    ) -> float:
        """Top-1 of ``spec`` on the validation split of ``data`` (loaded at
        ``spec.resolution`` with the supernet's split seed), in [0, 1].

        The sub-network is extracted, its BatchNorm statistics are recomputed on
        ``recal_batches`` batches of ``batch_size`` training images drawn with ``seed``
        (no augmentation), and it is evaluated on the whole validation split, or on its
        first ``val_images`` images in a fixed shuffled order (the same for every
        candidate). ``device``: where to score (default where the supernet is, at fp32)."""
        for name, value, low in (
            ("recal_batches", recal_batches, 1),
            ("batch_size", batch_size, 2),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise SupernetError(f"{name} must be an integer >= {low}, got {value!r}")
        if val_images is not None and (not isinstance(val_images, int) or val_images < 1):
            raise SupernetError(f"val_images must be a positive integer, got {val_images!r}")
        self.layout(spec)
        if data.resolution != spec.resolution:
            raise SupernetError(
                f"the architecture takes {spec.resolution}x{spec.resolution} input but data "
                f"{data.name!r} was loaded at {data.resolution}x{data.resolution}"
            )
        self.check_data(data)
        model = self.extract(spec)
        dev = resolve_device(device) if device is not None else None
        if dev is not None:
            dev.place(model)
        n = len(data.train_y)
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(n, generator=gen)[: recal_batches * batch_size]
        recalibrate_bn(
            model,
            train_batch(data, pick),
            data.mean,
            data.std,
            len(pick),
            batch_size=batch_size,
            device=dev,
        )
        val_x, val_y = data.val_x, data.val_y
        if val_images is not None and val_images < len(val_y):
            order = torch.randperm(len(val_y), generator=torch.Generator().manual_seed(0))
            keep = order[:val_images].sort().values
            val_x, val_y = val_x[keep], val_y[keep]
        return evaluate(model, val_x, val_y, data.classes, data.mean, data.std, device=dev).top1

    # --- sampling ------------------------------------------------------------------------------

    def largest(self, rng: np.random.Generator | None = None) -> ArchSpec:
        """The largest sub-network: widest, deepest, at the highest resolution, largest
        kernel and expansion, SE on where the space allows it (the sandwich rule's
        teacher). Activations are drawn from ``rng``, or each stage's first without."""
        return self._extreme(max, rng)

    def smallest(self, rng: np.random.Generator | None = None) -> ArchSpec:
        """The smallest sub-network: narrowest, shallowest, lowest resolution, smallest
        kernel and expansion, SE off where the space allows it."""
        return self._extreme(min, rng)

    def sample(self, rng: np.random.Generator) -> ArchSpec:
        """A uniformly random sub-network (``SearchSpace.random_params``)."""
        return self.space.spec_from_params(self.space.random_params(rng), self.num_classes)

    def _extreme(self, pick: Any, rng: np.random.Generator | None) -> ArchSpec:
        space = self.space
        stages = [
            [
                BlockChoice(
                    pick(stage.kernel),
                    pick(stage.expansion),
                    pick(stage.se),
                    stage.act[0] if rng is None else stage.act[int(rng.integers(len(stage.act)))],
                )
                for _ in range(pick(stage.depth))
            ]
            for stage in space.stages
        ]
        return space.make_spec(
            pick(space.widths), pick(space.resolutions), stages, self.num_classes
        )


def _relative(part: str, layer: Layer) -> str:
    """``layer``'s name within its part ("" for a part that is one layer: the stem)."""
    return layer.name[len(part) + 1 :]


def _module_of(module: nn.Module, part: str, layer: Layer) -> nn.Module:
    """The elastic module of part ``module`` that holds the plan's ``layer``."""
    try:
        return module.get_submodule(_relative(part, layer))
    except AttributeError:
        raise SupernetError(f"the supernet holds no layer {layer.name!r} of the plan") from None


def _largest_layers(space: SearchSpace, num_classes: int) -> dict[str, dict[str, Layer]]:
    """Each weighted layer of the plan at its largest size over every width and choice of
    the space, by part name (``stem``, ``blocks.3``, ``head``) and name within the part.

    Found by planning, at every width, the deepest spec with each expansion and SE on,
    rather than assumed: make_divisible is monotone, but this way the supernet cannot
    disagree with the spec that ``make_spec`` produces."""
    largest: dict[str, dict[str, Layer]] = {}
    rounds = max(len(s.expansion) for s in space.stages)
    for width in space.widths:
        for r in range(rounds):
            stages = [
                [
                    BlockChoice(
                        max(s.kernel),
                        s.expansion[min(r, len(s.expansion) - 1)],
                        max(s.se),
                        s.act[0],
                    )
                ]
                * max(s.depth)
                for s in space.stages
            ]
            spec = space.make_spec(width, max(space.resolutions), stages, num_classes)
            for part in spec.parts():
                layers = largest.setdefault(part.name, {})
                for layer in plan_part(part, num_classes):
                    if layer.has_weights:
                        name = _relative(part.name, layer)
                        layers[name] = _wider(layers.get(name), layer)
    return largest


def _wider(old: Layer | None, new: Layer) -> Layer:
    """``new`` with the largest channels, groups and kernel of the two."""
    if old is None:
        return new
    return replace(
        new,
        in_channels=max(old.in_channels, new.in_channels),
        out_channels=max(old.out_channels, new.out_channels),
        groups=max(old.groups, new.groups),
        kernel=max(old.kernel, new.kernel),
    )

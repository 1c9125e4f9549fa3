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
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from estimators._data import ImageData
from estimators._device import TrainDevice, resolve_device
from estimators._training import evaluate, recalibrate_bn, train_batch
from search_space import (
    Activation,
    ArchSpec,
    BlockChoice,
    BlockSpec,
    HeadSpec,
    MobileNet,
    NasctlError,
    SearchSpace,
    build_model,
)
from search_space._blocks import ACT_LAYERS
from search_space._builder import _init_weights

__all__ = [
    "DataIdentity",
    "Supernet",
    "SupernetError",
    "data_identity",
]


class SupernetError(NasctlError):
    """A supernet file, or what it is asked to score, does not fit."""


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


# --- elastic layers ---------------------------------------------------------------------


_ACTS = {act: layer() for act, layer in ACT_LAYERS.items()}  # not in place: autograd


def _act(x: torch.Tensor, act: Activation | None) -> torch.Tensor:
    return x if act is None else _ACTS[act](x)


def _centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel x kernel`` of a conv weight (OFA's elastic kernel, sec. 3.1)."""
    k = weight.shape[-1]
    if kernel > k:
        raise SupernetError(f"kernel {kernel} is larger than the supernet's {k}")
    start = (k - kernel) // 2
    return weight[..., start : start + kernel, start : start + kernel]


class ElasticConvBn(nn.Module):
    """A conv (+ BatchNorm, or a conv bias) at its largest size; a call uses the first
    input/output channels and the centre of the kernel. ``depthwise``: groups = channels,
    so output channels are the input's."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        depthwise: bool = False,
        bn: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.stride = stride
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride,
            kernel // 2,
            groups=in_channels if depthwise else 1,
            bias=not bn,
        )
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(out_channels) if bn else None

    def forward(
        self, x: torch.Tensor, out_channels: int, kernel: int, act: Activation | None
    ) -> torch.Tensor:
        c_in = x.shape[1]
        c_out = c_in if self.depthwise else out_channels
        weight = _centre(self.conv.weight[:c_out, : 1 if self.depthwise else c_in], kernel)
        bias = None if self.conv.bias is None else self.conv.bias[:c_out]
        x = F.conv2d(
            x, weight, bias, self.stride, kernel // 2, groups=c_in if self.depthwise else 1
        )
        if self.bn is not None:
            bn = self.bn
            mean, var, tracked = _buffers(bn)
            factor = 0.0
            if self.training:  # as nn.BatchNorm2d: momentum None is a cumulative average
                tracked.add_(1)
                factor = 1.0 / float(tracked) if bn.momentum is None else bn.momentum
            x = F.batch_norm(
                x,
                mean[:c_out],
                var[:c_out],
                bn.weight[:c_out],
                bn.bias[:c_out],
                self.training,
                factor,
                bn.eps,
            )
        return _act(x, act)

    def sliced(self, in_channels: int, out_channels: int, kernel: int) -> dict[str, torch.Tensor]:
        """The state of a ``ConvBnAct`` with these sizes, keyed like its state_dict."""
        c_in = 1 if self.depthwise else in_channels
        out = {"conv.weight": _centre(self.conv.weight[:out_channels, :c_in], kernel)}
        if self.conv.bias is not None:
            out["conv.bias"] = self.conv.bias[:out_channels]
        if self.bn is not None:
            mean, var, tracked = _buffers(self.bn)
            out.update(
                {
                    "bn.weight": self.bn.weight[:out_channels],
                    "bn.bias": self.bn.bias[:out_channels],
                    "bn.running_mean": mean[:out_channels],
                    "bn.running_var": var[:out_channels],
                    "bn.num_batches_tracked": tracked,
                }
            )
        return out


def _buffers(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running mean, variance and batch count (always present: track_running_stats)."""
    return (
        cast(torch.Tensor, bn.running_mean),
        cast(torch.Tensor, bn.running_var),
        cast(torch.Tensor, bn.num_batches_tracked),
    )


class ElasticSE(nn.Module):
    """Squeeze-and-excitation (MobileNetV3 sec. 5.3) at the largest channels and squeeze
    width; a call uses the input's channels and the first ``squeeze`` channels."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor, squeeze: int) -> torch.Tensor:
        c = x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1)
        b1, b2 = cast(torch.Tensor, self.fc1.bias), cast(torch.Tensor, self.fc2.bias)
        s = F.relu(F.conv2d(s, self.fc1.weight[:squeeze, :c], b1[:squeeze]))
        s = F.hardsigmoid(F.conv2d(s, self.fc2.weight[:c, :squeeze], b2[:c]))
        return x * s

    def sliced(self, channels: int, squeeze: int) -> dict[str, torch.Tensor]:
        b1, b2 = cast(torch.Tensor, self.fc1.bias), cast(torch.Tensor, self.fc2.bias)
        return {
            "fc1.weight": self.fc1.weight[:squeeze, :channels],
            "fc1.bias": b1[:squeeze],
            "fc2.weight": self.fc2.weight[:channels, :squeeze],
            "fc2.bias": b2[:channels],
        }


@dataclass(frozen=True)
class _Largest:
    """The largest sizes one block position takes over every width and choice."""

    in_channels: int
    out_channels: int
    mid_channels: int
    se_channels: int
    kernel: int
    stride: int
    expand: bool  # some choice has an expansion conv here


class ElasticBlock(nn.Module):
    """An inverted residual at its largest sizes; a call runs the block a ``BlockSpec``
    describes (the same layers, in the same order, as ``search_space.InvertedResidual``)."""

    def __init__(self, size: _Largest) -> None:
        super().__init__()
        self.conv_pw = ElasticConvBn(size.in_channels, size.mid_channels) if size.expand else None
        self.conv_dw = ElasticConvBn(
            size.mid_channels, size.mid_channels, size.kernel, size.stride, depthwise=True
        )
        self.se = ElasticSE(size.mid_channels, size.se_channels) if size.se_channels else None
        self.conv_pwl = ElasticConvBn(size.mid_channels, size.out_channels)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        out = x
        if self.conv_pw is not None and spec.has_expand_conv:
            out = self.conv_pw(out, spec.mid_channels, 1, spec.act)
        out = self.conv_dw(out, spec.mid_channels, spec.kernel, spec.act)
        if self.se is not None and spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.conv_pwl(out, spec.out_channels, 1, None)
        return out + x if spec.has_residual else out

    def sliced(self, spec: BlockSpec) -> dict[str, torch.Tensor]:
        parts: dict[str, dict[str, torch.Tensor]] = {}
        if self.conv_pw is not None and spec.has_expand_conv:
            parts["conv_pw"] = self.conv_pw.sliced(spec.in_channels, spec.mid_channels, 1)
        parts["conv_dw"] = self.conv_dw.sliced(spec.mid_channels, spec.mid_channels, spec.kernel)
        if self.se is not None and spec.has_se:
            parts["se"] = self.se.sliced(spec.mid_channels, spec.se_channels)
        parts["conv_pwl"] = self.conv_pwl.sliced(spec.mid_channels, spec.out_channels, 1)
        return {f"{p}.{k}": v for p, state in parts.items() for k, v in state.items()}


class ElasticHead(nn.Module):
    """[1x1 conv] -> global average pool -> [hidden linear + act] -> dropout -> classifier,
    at the largest widths (``search_space.Head`` with sliced weights)."""

    def __init__(self, in_channels: int, spec: HeadSpec, num_classes: int) -> None:
        super().__init__()
        channels = in_channels
        self.conv: ElasticConvBn | None = None
        if spec.conv_channels:
            self.conv = ElasticConvBn(channels, spec.conv_channels, bn=spec.conv_bn)
            channels = spec.conv_channels
        self.hidden: nn.Linear | None = None
        if spec.hidden_features:
            self.hidden = nn.Linear(channels, spec.hidden_features)
            channels = spec.hidden_features
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor, spec: HeadSpec) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x, spec.conv_channels, 1, spec.conv_act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if self.hidden is not None:
            h, c = spec.hidden_features, x.shape[1]
            x = _act(F.linear(x, self.hidden.weight[:h, :c], self.hidden.bias[:h]), spec.hidden_act)
        x = F.dropout(x, spec.dropout, self.training)
        return F.linear(x, self.classifier.weight[:, : x.shape[1]], self.classifier.bias)

    def sliced(self, in_channels: int, spec: HeadSpec) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        channels = in_channels
        if self.conv is not None:
            state = self.conv.sliced(channels, spec.conv_channels, 1)
            out.update({f"conv.{k}": v for k, v in state.items()})
            channels = spec.conv_channels
        if self.hidden is not None:
            h = spec.hidden_features
            out["hidden.weight"] = self.hidden.weight[:h, :channels]
            out["hidden.bias"] = self.hidden.bias[:h]
            channels = h
        out["classifier.weight"] = self.classifier.weight[:, :channels]
        out["classifier.bias"] = self.classifier.bias
        return out


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
        largest = _largest_sizes(self.space, num_classes)
        stem = largest.stem
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.stem = ElasticConvBn(3, stem.out_channels, stem.kernel, stem.stride)
            self.blocks = nn.ModuleList(ElasticBlock(size) for size in largest.blocks)
            self.head = ElasticHead(largest.head_in, largest.head, num_classes)
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
        of ``build_model(spec)`` (views into the supernet; ``extract`` copies them)."""
        layout = self.layout(spec)
        state = {
            f"stem.{k}": v
            for k, v in self.stem.sliced(3, spec.stem.out_channels, spec.stem.kernel).items()
        }
        for i, (index, block) in enumerate(zip(layout, spec.blocks, strict=True)):
            sliced = cast(ElasticBlock, self.blocks[index]).sliced(block)
            state.update({f"blocks.{i}.{k}": v for k, v in sliced.items()})
        head = self.head.sliced(spec.blocks[-1].out_channels, spec.head)
        state.update({f"head.{k}": v for k, v in head.items()})
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


@dataclass(frozen=True)
class _Sizes:
    stem: Any  # StemSpec at its largest
    blocks: tuple[_Largest, ...]
    head_in: int
    head: HeadSpec


def _largest_sizes(space: SearchSpace, num_classes: int) -> _Sizes:
    """Each layer's largest size over every width and choice of the space.

    Found by building, at every width, the deepest spec with each expansion and SE on,
    rather than assumed: make_divisible is monotone, but this way the supernet cannot
    disagree with the spec that ``make_spec`` produces."""
    blocks: list[dict[str, int]] = []
    stems, heads, head_ins = [], [], []
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
            stems.append(spec.stem)
            heads.append(spec.head)
            head_ins.append(spec.blocks[-1].out_channels)
            if not blocks:
                blocks = [{} for _ in spec.blocks]
            for size, b in zip(blocks, spec.blocks, strict=True):
                for name in ("in_channels", "out_channels", "mid_channels", "se_channels"):
                    size[name] = max(size.get(name, 0), getattr(b, name))
                size["kernel"], size["stride"] = b.kernel, b.stride
                size["expand"] = size.get("expand", 0) or int(b.has_expand_conv)
    stem = max(stems, key=lambda s: s.out_channels)
    head = max(heads, key=lambda h: (h.conv_channels, h.hidden_features))
    return _Sizes(
        stem=stem,
        blocks=tuple(
            _Largest(
                s["in_channels"],
                s["out_channels"],
                s["mid_channels"],
                s["se_channels"],
                s["kernel"],
                s["stride"],
                bool(s["expand"]),
            )
            for s in blocks
        ),
        head_in=max(head_ins),
        head=head,
    )

"""What a trained network sees: its first-layer filters and its feature maps, as PNGs.

The two pictures of the CNN literature (Krizhevsky et al. 2012, Fig. 3: the first layer's
kernels; Zeiler & Fergus 2014, sec. 4: feature maps of chosen layers for one image).
Weights come from any checkpoint nasctl writes or reads (``read_checkpoint``: a training
checkpoint, a ``pt`` export, or a bare state_dict); the image is resized (shorter side to
the network's resolution, centre crop) and normalised with the statistics of the data the
checkpoint was trained on when it records them, else with mean 0.5 and std 0.25 (nasctl's
``ImageData`` defaults).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from results._checkpoint import read_checkpoint, state_dict_mismatch
from search_space import (
    ArchSpec,
    ClassicSpec,
    NasctlError,
    build_classic,
    build_model,
    format_arch,
)

__all__ = [
    "Visualization",
    "VisualizeError",
    "feature_layers",
    "feature_maps",
    "load_image",
    "load_trained",
    "visualize",
]

DEFAULT_MEAN, DEFAULT_STD = 0.5, 0.25


class VisualizeError(NasctlError):
    """An image, checkpoint or layer name that cannot be visualised."""


@dataclass(frozen=True)
class Visualization:
    """The files written: the input as the network saw it, the filters, one per layer."""

    input_png: Path
    filters_png: Path
    feature_pngs: dict[str, Path]


# --- inputs -----------------------------------------------------------------------------


def _stats(path: Path, channels: int) -> tuple[list[float], list[float]]:
    """Mean and std of the checkpoint's training data, when it records them."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        data = payload.get("data", {}) if isinstance(payload, dict) else {}
        mean = [float(v) for v in data["mean"]]
        std = [float(v) for v in data["std"]]
    except Exception:  # no statistics recorded: the defaults below
        return [DEFAULT_MEAN] * channels, [DEFAULT_STD] * channels
    if len(mean) != channels or len(std) != channels:
        return [DEFAULT_MEAN] * channels, [DEFAULT_STD] * channels
    return mean, std


def load_trained(
    spec: ArchSpec | ClassicSpec, checkpoint: str | Path
) -> tuple[nn.Module, list[float], list[float]]:
    """The network with the checkpoint's weights (eval mode), and the normalisation."""
    path = Path(checkpoint)
    if isinstance(spec, ArchSpec):
        state, _ = read_checkpoint(path, spec)
        model: nn.Module = build_model(spec)
        what = format_arch(spec)
        channels = 3
    else:
        state, recorded = read_checkpoint(path)
        if recorded is not None:
            raise VisualizeError(
                f"checkpoint {str(path)!r} was saved for a MobileNet-style architecture "
                f"({format_arch(recorded)}), not for {spec.name}"
            )
        model = build_classic(spec)
        what = spec.name
        channels = spec.in_channels
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = state_dict_mismatch(model, state, exc)
        raise VisualizeError(
            f"checkpoint {str(path)!r} does not hold weights of {what}: {detail}"
        ) from None
    mean, std = _stats(path, channels)
    return model.eval(), mean, std


def load_image(
    path: str | Path, resolution: int, channels: int, mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, np.ndarray]:
    """(normalised 1xCxRxR batch, the RxR crop as uint8 for display): shorter side resized
    to ``resolution`` (bilinear), centre crop."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise VisualizeError(f"image {str(path)!r} does not exist")
    try:
        with Image.open(path) as raw:
            img = raw.convert("RGB" if channels == 3 else "L")
        w, h = img.size
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        crop = np.asarray(img.crop((left, top, left + resolution, top + resolution)))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VisualizeError(f"image {str(path)!r} cannot be read: {reason}") from None
    pixels = torch.from_numpy(crop.copy()).float().div(255)
    pixels = pixels.permute(2, 0, 1) if pixels.ndim == 3 else pixels[None]
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return ((pixels - m) / s)[None], crop


# --- layers -----------------------------------------------------------------------------


def feature_layers(model: nn.Module) -> list[str]:
    """The layers whose outputs are feature maps, in order: a MobileNet's stem and blocks,
    a classic network's convolution, Inception and residual rows."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, ArchSpec):
        return ["stem", *(f"blocks.{i}" for i in range(len(spec.blocks)))]
    return [
        name
        for name, child in model.named_children()
        if any(isinstance(m, nn.Conv2d) for m in child.modules())
    ]


def _default_layers(model: nn.Module) -> list[str]:
    names = feature_layers(model)
    picks = [names[0], names[len(names) // 2], names[-1]]
    return list(dict.fromkeys(picks))


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise VisualizeError("the network has no convolution")


# --- drawing ----------------------------------------------------------------------------


def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _save(fig: Any, path: Path, title_in: float = 0.0) -> Path:
    """Save with small margins; ``title_in`` inches kept at the top for the title."""
    import matplotlib.pyplot as plt

    if title_in:
        top = 1 - title_in / fig.get_figheight()
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=top, wspace=0.1, hspace=0.3)
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_filters(conv: nn.Conv2d, name: str, path: Path) -> Path:
    """One tile per output filter, each scaled to its own range; RGB when it reads 3
    channels, grey otherwise (the mean over its input channels)."""
    import matplotlib.pyplot as plt

    w = conv.weight.detach().float()  # out, in, k, k
    n = w.shape[0]
    rows, cols = _grid(n)
    size = max(0.6, min(1.0, 7.0 / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(max(3.2, cols * size), rows * size + 0.5), dpi=110
    )
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        f = w[i]
        lo, hi = float(f.min()), float(f.max())
        f = (f - lo) / (hi - lo) if hi > lo else torch.zeros_like(f)
        if f.shape[0] == 3:
            ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            ax.imshow(f.mean(0).numpy(), cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    k = conv.kernel_size[0]
    fig.suptitle(f"first layer ({name}): {n} filters {k}x{k}x{w.shape[1]}", fontsize=9)
    return _save(fig, path, 0.45)


def _plot_maps(maps: torch.Tensor, layer: str, count: int, path: Path) -> Path:
    """The ``count`` channels with the largest mean absolute activation, each scaled to
    its own range, labelled with its channel index."""
    import matplotlib.pyplot as plt

    c, h, w = maps.shape
    strength = maps.abs().mean(dim=(1, 2))
    order = torch.argsort(strength, descending=True)[: min(count, c)].tolist()
    rows, cols = _grid(len(order))
    tile = max(0.9, min(1.6, 12.0 / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * tile, rows * tile + 0.5), dpi=110)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, ch in zip(axes, order, strict=False):
        ax.imshow(maps[ch].numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(str(ch), fontsize=6, pad=1)
    fig.suptitle(f"{layer}: {len(order)} of {c} maps {h}x{w}, most active first", fontsize=9)
    return _save(fig, path, 0.5)


def feature_maps(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The outputs of the named submodules for input ``x`` (one forward, hooks)."""
    modules = dict(model.named_modules())
    for name in layers:
        if name not in modules or not name:
            raise VisualizeError(
                f"unknown layer {name!r}; layers of this network: "
                f"{', '.join(feature_layers(model))} (or any submodule, e.g. blocks.3.conv_dw)"
            )
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        modules[n].register_forward_hook(
            lambda _m, _i, output, n=n: captured.__setitem__(n, output.detach())
        )
        for n in layers
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    for name in layers:
        if captured[name].ndim != 4:
            raise VisualizeError(
                f"layer {name!r} gives a tensor of shape {tuple(captured[name].shape)}, not "
                "feature maps"
            )
    return captured


def visualize(
    spec: ArchSpec | ClassicSpec,
    checkpoint: str | Path,
    image: str | Path,
    out: str | Path,
    layers: Sequence[str] | None = None,
    maps_per_layer: int = 32,
) -> Visualization:
    """Write ``input.png``, ``filters.png`` and ``features_<layer>.png`` (one per layer;
    default: the first, a middle and the last of ``feature_layers``) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(maps_per_layer, bool) or maps_per_layer < 1:
        raise VisualizeError(f"maps per layer must be a positive integer, got {maps_per_layer}")
    model, mean, std = load_trained(spec, checkpoint)
    channels = spec.in_channels if isinstance(spec, ClassicSpec) else 3
    x, crop = load_image(image, spec.resolution, channels, mean, std)
    chosen = list(dict.fromkeys(layers)) if layers else _default_layers(model)
    captured = feature_maps(model, x, chosen)

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VisualizeError(f"cannot write to {str(out)!r}: {exc.strerror}") from None
    fig, ax = plt.subplots(figsize=(3, 3.3), dpi=110)
    ax.imshow(crop, cmap="gray" if crop.ndim == 2 else None)
    ax.set_title(f"input {spec.resolution}x{spec.resolution}", fontsize=9)
    ax.axis("off")
    input_png = _save(fig, out / "input.png")
    conv_name, conv = _first_conv(model)
    filters_png = _plot_filters(conv, conv_name, out / "filters.png")
    features = {
        name: _plot_maps(captured[name][0], name, maps_per_layer, out / f"features_{name}.png")
        for name in chosen
    }
    return Visualization(input_png, filters_png, features)

"""ARCH on the command line: a baseline name, an arch string, a spec .json file or (where a
command also takes them) a classic reference network's name."""

from __future__ import annotations

from pathlib import Path

from search_space import (
    ArchSpec,
    ClassicSpec,
    SpecError,
    baseline_names,
    classic_names,
    get_baseline,
    get_classic,
    load_spec,
    looks_like_arch,
    parse_arch,
)

__all__ = ["resolve_arch", "resolve_model"]


def resolve_arch(
    text: str, width: float = 1.0, resolution: int | None = None, num_classes: int | None = None
) -> ArchSpec:
    """ARCH on the command line: a baseline name, an arch string or a spec .json file.

    ``width`` applies to baseline names only; ``resolution`` and ``num_classes`` override.
    """
    if text in baseline_names():
        spec = get_baseline(text, width, resolution or 224, num_classes or 1000)
    elif looks_like_arch(text):
        spec = parse_arch(text)
    elif text.endswith(".json") or Path(text).exists():
        spec = load_spec(text)
    elif text in classic_names():
        raise SpecError(
            f"{text} is a classic reference network, not a MobileNet-style architecture; "
            "this command takes a baseline name, an arch string or a spec .json file"
        )
    else:
        raise SpecError(
            f"ARCH {text!r} is not a baseline ({', '.join(baseline_names())}), an arch string "
            "(r<res>_n<classes>,stem_...,...,head_...) or a spec .json file"
        )
    changes: dict[str, int] = {}
    if resolution is not None and resolution != spec.resolution:
        changes["resolution"] = resolution
    if num_classes is not None and num_classes != spec.num_classes:
        changes["num_classes"] = num_classes
    return spec.replace(**changes) if changes else spec


def resolve_model(
    text: str, width: float = 1.0, resolution: int | None = None, num_classes: int | None = None
) -> ArchSpec | ClassicSpec:
    """``resolve_arch``, or a classic reference network's name (``lenet5``, ``vgg16``, ...)
    at its default input unless ``resolution`` / ``num_classes`` say otherwise."""
    if text in classic_names():
        return get_classic(text, resolution, num_classes)
    known = text in baseline_names() or looks_like_arch(text)
    if not (known or text.endswith(".json") or Path(text).exists()):
        raise SpecError(
            f"ARCH {text!r} is not a baseline ({', '.join(baseline_names())}), a classic "
            f"network ({', '.join(classic_names())}), an arch string "
            "(r<res>_n<classes>,stem_...,...,head_...) or a spec .json file"
        )
    return resolve_arch(text, width, resolution, num_classes)

"""Bounds every package shares: the largest network nasctl takes, thread counts, and
numbers that must be finite.

Each bound is far above anything real (ImageNet-21k has 21,841 classes; the widest
MobileNet layer has 1,280 channels) and exists so that a typo is refused with a sentence
instead of exhausting memory, overflowing a float or crashing a runtime: ONNX Runtime
segfaults when asked for 100,000 threads.
"""

from __future__ import annotations

import math
import os

from search_space._errors import NasctlError

__all__ = [
    "MAX_BLOCKS",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_KERNEL",
    "MAX_RESOLUTION",
    "check_finite",
    "check_threads",
    "max_threads",
]

#: Largest input resolution (pixels a side) of any network.
MAX_RESOLUTION = 2048
#: Largest number of classes of a head.
MAX_CLASSES = 100_000
#: Largest channel count of any layer.
MAX_CHANNELS = 16_384
#: Most blocks in one network (MobileNets have 13 to 17).
MAX_BLOCKS = 1_000
#: Largest convolution kernel.
MAX_KERNEL = 31


def max_threads() -> int:
    """The most threads any runtime is given: four per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 4 * (cores or 1)


def check_threads(value: object, name: str = "threads") -> int:
    """``value`` as a thread count in 1..max_threads(), or NasctlError naming ``name``."""
    top = max_threads()
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
        raise NasctlError(
            f"{name} must be an integer from 1 to {top} (4 per core here), got {value!r}"
        )
    return value


def check_finite(value: object, name: str, *, negative: bool = False) -> float:
    """``value`` as a finite float (and not negative, unless ``negative``), or
    NasctlError naming ``name``: NaN would pass every ``x <= 0`` test unnoticed."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or (value < 0 and not negative)
    ):
        rule = "a finite number" if negative else "a finite number >= 0"
        raise NasctlError(f"{name} must be {rule}, got {value!r}")
    return float(value)

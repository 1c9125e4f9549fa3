"""What an architecture is: spec, string codec, blocks, builder, baselines, search space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search_space._baselines import (
    BASELINES,
    REFERENCE_COUNTS,
    baseline_names,
    get_baseline,
    register_baseline,
)
from search_space._classic import (
    CLASSICS,
    ClassicEntry,
    classic_names,
    get_classic,
    register_classic,
)
from search_space._classic_spec import ClassicSpec
from search_space._codec import format_arch, looks_like_arch, parse_arch
from search_space._errors import NasctlError, NasctlWarning, SpaceError, SpecError
from search_space._lazy import lazy_exports
from search_space._limits import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_KERNEL,
    MAX_RESOLUTION,
    check_finite,
    check_threads,
    max_threads,
)
from search_space._plan import INPUT, Layer, LayerOp, plan, plan_part
from search_space._space import SearchSpace
from search_space._space_choices import BlockChoice, StageSpace
from search_space._space_file import (
    BUILTIN_SPACES,
    builtin_space_text,
    default_space_text,
    load_space,
    space_source,
)
from search_space._spec import (
    SPEC_FORMAT,
    Activation,
    ArchSpec,
    BlockKind,
    BlockSpec,
    HeadSpec,
    Part,
    StemSpec,
    load_spec,
    make_divisible,
)

__all__ = [
    "BASELINES",
    "BUILTIN_SPACES",
    "CLASSICS",
    "INPUT",
    "MAX_BLOCKS",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_KERNEL",
    "MAX_RESOLUTION",
    "REFERENCE_COUNTS",
    "SPEC_FORMAT",
    "Activation",
    "ArchSpec",
    "BlockChoice",
    "BlockKind",
    "BlockSpec",
    "ClassicEntry",
    "ClassicNet",
    "ClassicSpec",
    "HeadSpec",
    "Layer",
    "LayerOp",
    "MobileNet",
    "NasctlError",
    "NasctlWarning",
    "Part",
    "SearchSpace",
    "SpaceError",
    "SpecError",
    "StageSpace",
    "StemSpec",
    "baseline_names",
    "build_classic",
    "build_model",
    "builtin_space_text",
    "check_finite",
    "check_threads",
    "classic_names",
    "cpu_seeded",
    "default_space_text",
    "format_arch",
    "get_baseline",
    "get_classic",
    "load_space",
    "load_spec",
    "looks_like_arch",
    "make_divisible",
    "max_threads",
    "parse_arch",
    "plan",
    "plan_part",
    "register_baseline",
    "register_classic",
    "space_source",
]

# The builders import torch (seconds): they load on first use, so that reading specs and
# arch strings (and `nasctl --help`) does not pay for it. lazy_exports reads the names and
# their modules from this block.
if TYPE_CHECKING:
    from search_space._builder import MobileNet, build_model, cpu_seeded
    from search_space._classic_builder import ClassicNet, build_classic

__getattr__ = lazy_exports(__name__)

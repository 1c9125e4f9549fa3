"""What an architecture is: spec, string codec, blocks, builder, baselines, search space."""

from search_space._baselines import (
    BASELINES,
    REFERENCE_COUNTS,
    baseline_names,
    get_baseline,
    register_baseline,
)
from search_space._builder import MobileNet, build_model
from search_space._codec import format_arch, looks_like_arch, parse_arch
from search_space._errors import NasctlError, SpaceError, SpecError
from search_space._space import (
    BlockChoice,
    SearchSpace,
    StageSpace,
    builtin_space_text,
    default_space_text,
    load_space,
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
    "REFERENCE_COUNTS",
    "SPEC_FORMAT",
    "Activation",
    "ArchSpec",
    "BlockChoice",
    "BlockKind",
    "BlockSpec",
    "HeadSpec",
    "MobileNet",
    "NasctlError",
    "Part",
    "SearchSpace",
    "SpaceError",
    "SpecError",
    "StageSpace",
    "StemSpec",
    "baseline_names",
    "build_model",
    "builtin_space_text",
    "default_space_text",
    "format_arch",
    "get_baseline",
    "load_space",
    "load_spec",
    "looks_like_arch",
    "make_divisible",
    "parse_arch",
    "register_baseline",
]

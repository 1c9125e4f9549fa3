"""What an architecture is: spec, string codec, blocks, builder, baselines, search space."""

from search_space._baselines import (
    BASELINES,
    REFERENCE_COUNTS,
    baseline_names,
    get_baseline,
    register_baseline,
)
from search_space._builder import MobileNet, build_model
from search_space._classic import (
    CLASSICS,
    ClassicEntry,
    classic_names,
    get_classic,
    register_classic,
)
from search_space._classic_builder import ClassicNet, build_classic
from search_space._classic_spec import ClassicSpec
from search_space._codec import format_arch, looks_like_arch, parse_arch
from search_space._errors import NasctlError, SpaceError, SpecError
from search_space._space import (
    BUILTIN_SPACES,
    BlockChoice,
    SearchSpace,
    StageSpace,
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
    "MobileNet",
    "NasctlError",
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
    "classic_names",
    "default_space_text",
    "format_arch",
    "get_baseline",
    "get_classic",
    "load_space",
    "load_spec",
    "looks_like_arch",
    "make_divisible",
    "parse_arch",
    "register_baseline",
    "register_classic",
    "space_source",
]

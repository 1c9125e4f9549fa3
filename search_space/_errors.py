"""The one error family nasctl's library code raises for bad input."""

from __future__ import annotations

__all__ = ["NasctlError", "SpaceError", "SpecError"]


class NasctlError(Exception):
    """Bad input or an impossible request. The message names the field and the rule.

    Only the CLI turns this into one red line on stderr and exit code 2.
    """


class SpecError(NasctlError):
    """An architecture spec, arch string or spec file is invalid."""


class SpaceError(NasctlError):
    """A search space definition is invalid."""

"""The one error family nasctl's library code raises for bad input."""

from __future__ import annotations

__all__ = ["NasctlError", "NasctlWarning", "SpaceError", "SpecError"]


class NasctlError(Exception):
    """Bad input or an impossible request. The message names the field and the rule.

    Only the CLI turns this into one red line on stderr and exit code 2.
    """


class NasctlWarning(UserWarning):
    """Something the user should know that did not stop the work (a repaired file).

    Library code warns with it; the CLI prints it as one yellow line on stderr.
    """


class SpecError(NasctlError):
    """An architecture spec, arch string or spec file is invalid."""


class SpaceError(NasctlError):
    """A search space definition is invalid."""

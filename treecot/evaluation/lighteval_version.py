"""Which lighteval release treecot's evaluation runs on, checked without importing lighteval.

`treecot.evaluation.lighteval_compat` subclasses lighteval's private internals, so `run_eval` (first thing)
and that module (at import) refuse any other release with one message naming the installed version.
"""

from __future__ import annotations

import importlib.metadata

__all__ = [
    "SUPPORTED_LIGHTEVAL",
    "UnsupportedLightevalVersion",
    "check_lighteval_version",
    "installed_version",
]


def installed_version() -> str:
    """The installed lighteval's version (`importlib.metadata.PackageNotFoundError` when it is missing)."""
    return importlib.metadata.version("lighteval")


#: The lighteval release (major.minor) whose private internals these workarounds rely on.
SUPPORTED_LIGHTEVAL = "0.13"


class UnsupportedLightevalVersion(ImportError):
    """The installed lighteval is not the release treecot's evaluation workarounds were written for."""


def check_lighteval_version(version: str | None = None) -> str:
    """Check that the installed lighteval is a `SUPPORTED_LIGHTEVAL` release, without importing it.

    Args:
        version (`str`, *optional*):
            The version to check (default: the installed distribution's).

    Returns:
        `str`: the version checked.

    Raises:
        UnsupportedLightevalVersion: lighteval is missing or another release is installed.
    """
    if version is None:
        try:
            version = installed_version()
        except importlib.metadata.PackageNotFoundError:
            raise UnsupportedLightevalVersion(
                f"treecot eval needs lighteval {SUPPORTED_LIGHTEVAL}.x, which is not installed: "
                "pip install -c constraints.txt lighteval"
            ) from None
    if version.split(".")[:2] != SUPPORTED_LIGHTEVAL.split("."):
        raise UnsupportedLightevalVersion(
            f"treecot eval needs lighteval {SUPPORTED_LIGHTEVAL}.x (constraints.txt pins 0.13.0), but lighteval "
            f"{version} is installed: its workarounds subclass lighteval's private internals (Registry, "
            "Pipeline._init_tasks_and_requests, TransformersModel._padded_greedy_until), which other releases "
            f"change. Install the supported release: pip install 'lighteval=={SUPPORTED_LIGHTEVAL}.0'"
        )
    return version

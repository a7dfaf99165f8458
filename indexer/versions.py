"""Installed package versions, as the manifest and the servers report them."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


# read once per process: every commit writes them into its manifest, and reading a package's
# metadata parses its METADATA file (9 ms of each one-document write)
@cache
def package_version(name: str, unknown: str = "unknown") -> str:
    """The installed version of a distribution, or ``unknown`` when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return unknown


def findling_version() -> str:
    """findling's own version (``0+unknown`` when run from a source tree that is not installed)."""
    return package_version("findling", "0+unknown")

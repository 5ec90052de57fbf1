"""Installed package versions, for the provenance recorded beside runs, bundles and measurements."""

from __future__ import annotations

from importlib import metadata

__all__ = ["package_versions"]


def package_versions(names) -> dict[str, str]:
    """``{distribution: version}`` for those of ``names`` that are installed (read from metadata, no import)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out

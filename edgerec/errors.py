"""One family of errors. Each says what went wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = [
    "EdgerecError",
    "ConfigError",
    "DataError",
    "ModelError",
    "MissingDependencyError",
    "BundleError",
    "ExportError",
    "SourceError",
    "BackendError",
    "DeployError",
    "suggest",
    "require",
]


class EdgerecError(Exception):
    """Base class. ``str(err)`` is the message shown to the user; ``hint`` says how to fix it."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  fix: {hint}")


class ConfigError(EdgerecError):
    """A flag, YAML key or value that is not valid."""


class DataError(EdgerecError):
    """A dataset that cannot be used: missing path, empty class, single class, bad CSV."""


class ModelError(EdgerecError):
    """A model name, checkpoint or weights file that cannot be used."""


class MissingDependencyError(EdgerecError):
    """An optional extra is not installed."""

    def __init__(self, package: str, extra: str, *, purpose: str | None = None):
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"{package} is not installed{what}",
            hint=f"pip install 'edgerec[{extra}]'",
        )
        self.package = package
        self.extra = extra


class BundleError(EdgerecError):
    """A bundle whose manifest, schema or file hashes do not check out."""


class ExportError(EdgerecError):
    """An export that failed or did not pass verification."""


class SourceError(EdgerecError):
    """A camera, stream or file that cannot be opened or read."""


class BackendError(EdgerecError):
    """An inference backend that cannot load or run an artifact."""


class DeployError(EdgerecError):
    """A deploy, rollback or status call that failed on a board."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when something close exists, else the list of valid choices."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; choose from: {', '.join(choices)}"


def require(module: str, extra: str, *, package: str | None = None, purpose: str | None = None):
    """Import an optional module or raise ``MissingDependencyError`` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # only the missing module itself, not a broken install below it
        if exc.name and not module.startswith(exc.name.split(".")[0]):
            raise
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose=purpose) from exc

"""Export's view of the format table (``edgerec.formats``): each format's exporter, the backend that verifies it,
and the checks on per-format options.

An exporter has the signature ``(src: ExportSource, precision: str, out_dir: Path, **options) -> bundle.Artifact``:
the exporter fills the format's contract, the orchestrator the files' hashes.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import ConfigError, suggest
from ..formats import FORMATS as _TABLE
from ..formats import PRECISIONS

__all__ = ["FORMATS", "PRECISIONS", "BACKEND_FOR", "exporter", "check_options", "parse_list"]

FORMATS: dict[str, str] = {name: f.exporter for name, f in _TABLE.items()}

# The runtime backend each format is verified with (its own runtime, as on the device): the format's best.
BACKEND_FOR: dict[str, str] = {name: f.backends[0] for name, f in _TABLE.items()}


def exporter(name: str) -> Callable:
    """The export function of format ``name`` (imported on first use: converters are heavy)."""
    if name not in FORMATS:
        raise ConfigError(f"unknown export format '{name}'{suggest(name, FORMATS)}")
    module, func = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), func)


# set by the export itself, never by a recipe
_OWN_ARGS = {"src", "precision", "out_dir"}
_SET_BY_EXPORT = {"openvino": {"embed_preprocess"}}


def check_options(options: dict | None) -> None:
    """Every per-format option (``{"onnx": {"int8_activations": "int8"}}``) names a real keyword argument of that
    format's exporter: a misspelled one is an error with a suggestion, never silently dropped."""
    import inspect

    for fmt, opts in (options or {}).items():
        params = inspect.signature(exporter(fmt)).parameters
        allowed = set(params) - _OWN_ARGS - _SET_BY_EXPORT.get(fmt, set())
        for key in opts or {}:
            if key not in allowed:
                if not allowed:
                    raise ConfigError(f"unknown {fmt} export option '{key}' (it takes none)")
                raise ConfigError(f"unknown {fmt} export option '{key}'{suggest(str(key), allowed)}")


def parse_list(value, allowed, *, what: str) -> tuple[str, ...]:
    """``"onnx,tflite"`` or a list -> a validated tuple in the table's order, duplicates removed."""
    items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value) if v and v.strip()]
    if not items:
        raise ConfigError(f"no {what} given", hint=f"choose from: {', '.join(allowed)}")
    for v in items:
        if v not in allowed:
            raise ConfigError(f"unknown {what} '{v}'{suggest(v, allowed)}")
    return tuple(a for a in allowed if a in items)

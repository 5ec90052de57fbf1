"""Inference backends: one small module each behind one interface, chosen from a table.

>>> from edgerec.runtime.backends import open_backend   # doctest: +SKIP
>>> be = open_backend("bundle/model_int8.tflite", artifact, backend="auto", threads=2)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ...bundle import Artifact
from ...errors import BackendError, MissingDependencyError, suggest
from ...formats import FORMATS
from .base import Backend

__all__ = ["BACKENDS", "FORMAT_BACKENDS", "Backend", "backend_class", "open_backend", "installed_backends", "candidates"]

BACKENDS: dict[str, str] = {
    "litert": "edgerec.runtime.backends.litert_backend:LiteRTBackend",
    "onnxruntime": "edgerec.runtime.backends.ort_backend:OrtBackend",
    "openvino": "edgerec.runtime.backends.ov_backend:OpenVINOBackend",
}

# Which backends can run which format, best first (from the format table, ``edgerec.formats``).
FORMAT_BACKENDS: dict[str, tuple[str, ...]] = {name: f.backends for name, f in FORMATS.items()}


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'{suggest(name, BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def installed_backends() -> list[str]:
    """Backends whose library imports here (cheap: find_spec, no import)."""
    return [name for name in BACKENDS if backend_class(name).is_installed()]


def candidates(format: str) -> tuple[str, ...]:
    return FORMAT_BACKENDS.get(format, ())


def open_backend(path: str | Path, artifact: Artifact, *, backend: str = "auto", threads: int | None = None,
                 device: str | None = None) -> Backend:
    """Load ``path`` with ``backend`` (or the first installed one that runs the artifact's format).

    ``threads``: ``None``/``0``/``-1``/``"auto"`` let the backend choose, else 1..``limits.max_threads()``.
    """
    from ...limits import resolve_threads

    threads = resolve_threads(threads, what="threads")
    names = candidates(artifact.format)
    if backend != "auto":
        if backend not in names:
            raise BackendError(
                f"backend '{backend}' cannot run {artifact.format} artifacts",
                hint=f"use one of: {', '.join(names)}",
            )
        names = (backend,)
    missing = []
    for name in names:
        cls = backend_class(name)
        if not cls.is_installed():
            missing.append(cls)
            continue
        return cls(Path(path), artifact, threads=threads, device=device)
    extras = ", ".join(f"{c.package} (pip install 'edgerec[{c.extra}]')" for c in missing)
    raise MissingDependencyError(
        missing[0].package if missing else "a backend", missing[0].extra if missing else "runtime",
        purpose=f"running {artifact.key}; any of: {extras}",
    )

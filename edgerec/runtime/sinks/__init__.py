"""Where results go: a table of sinks, one small module each.

Every sink has ``write(image, record)`` (``record`` is the JSON-ready dict the JSON-lines sink
prints: timestamp, frame index, label, score, top-k, per-stage latency) and ``close()``.
"""

from __future__ import annotations

import importlib

from ...errors import ConfigError, suggest
from ._base import Sink

__all__ = ["SINKS", "Sink", "open_sink"]

SINKS: dict[str, str] = {
    "jsonl": "edgerec.runtime.sinks.jsonl:JsonlSink",
    "csv": "edgerec.runtime.sinks.csvfile:CsvSink",
    "video": "edgerec.runtime.sinks.video:VideoSink",
    "window": "edgerec.runtime.sinks.window:WindowSink",
    "http": "edgerec.runtime.sinks.http:HttpSink",
    "collect": "edgerec.capture.doubt:CollectSink",  # doubt sampling (edgerec run --collect)
}


def open_sink(kind: str, *args, **kwargs) -> Sink:
    if kind not in SINKS:
        raise ConfigError(f"unknown sink '{kind}'{suggest(kind, SINKS)}")
    module, cls = SINKS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(*args, **kwargs)

"""JSON lines, one object per frame, to stdout (``-``) or a file (flushed per line, so ``tail -f`` works)."""

from __future__ import annotations

import json
import sys

from ._base import Sink

__all__ = ["JsonlSink"]


class JsonlSink(Sink):
    def __init__(self, path: str = "-"):
        self.path = path
        self._f = sys.stdout if path == "-" else open(path, "w", buffering=1)

    def write(self, image, record):
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self):
        if self._f is not sys.stdout:
            self._f.close()

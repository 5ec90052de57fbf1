"""Collecting training images on the board itself (numpy + OpenCV, never torch).

- ``capture``: frames from any ``edgerec run`` source into an ImageFolder ``DIR/<label>/``, at a set rate,
  skipping near-duplicates, blurred, dark and overexposed frames (``edgerec capture``).
- ``CollectSink``: the recognition loop's doubt sampler (``edgerec run --collect DIR``): frames the model is
  unsure of, flips of its answer and a small random share, rate- and disk-capped, with the prediction beside.

>>> from edgerec.capture import capture, CaptureOptions                     # doctest: +SKIP
>>> with open_source("0") as cam:
...     summary = capture(cam, "data/", CaptureOptions(label="apple", max_images=50))

Names are imported on first use, so ``import edgerec.capture`` does not load OpenCV.
"""

from __future__ import annotations

import importlib

__all__ = ["capture", "CaptureOptions", "CaptureSummary", "QualityLimits", "Quality", "measure", "dhash", "hamming",
           "CollectSink", "DoubtPolicy", "doubt_reasons", "StorageFull", "check_label"]

_WHERE = {"capture": "session", "CaptureOptions": "session", "CaptureSummary": "session",
          "QualityLimits": "quality", "Quality": "quality", "measure": "quality", "dhash": "quality", "hamming": "quality",
          "CollectSink": "doubt", "DoubtPolicy": "doubt", "doubt_reasons": "doubt",
          "StorageFull": "store", "check_label": "store"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'edgerec.capture' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value

"""Datasets: read images, load folders/CSVs, check them, split them, write the built-in ones.

>>> from edgerec.data import write_digits, load_dataset, stratified_split   # doctest: +SKIP
>>> ds = load_dataset(write_digits("digits", size=32))                       # doctest: +SKIP
>>> split = stratified_split(ds, (0.7, 0.2, 0.1), seed=0)                    # doctest: +SKIP

Names are imported on first use, so ``import edgerec.data`` stays cheap (no Pillow, no scikit-learn).
"""

from __future__ import annotations

import importlib

__all__ = [
    "read_image",
    "probe_image",
    "IMAGE_EXTENSIONS",
    "Sample",
    "Dataset",
    "load_dataset",
    "Split",
    "stratified_split",
    "kfold",
    "check_dataset",
    "CheckReport",
    "write_digits",
    "write_synth",
    "write_montage",
]

_WHERE = {
    "read_image": "images",
    "probe_image": "images",
    "IMAGE_EXTENSIONS": "images",
    "Sample": "dataset",
    "Dataset": "dataset",
    "load_dataset": "dataset",
    "Split": "split",
    "stratified_split": "split",
    "kfold": "split",
    "check_dataset": "check",
    "CheckReport": "check",
    "write_digits": "builtin",
    "write_synth": "builtin",
    "write_montage": "montage",
}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

"""Stratified, seeded train/val/test splits saved as relative paths, and stratified k-fold.

The split is made with scikit-learn's ``train_test_split(stratify=...)`` in two steps (test off the whole,
then val off the rest), so every class keeps its share in every part. Multi-label data is stratified on
each image's first label. Pre-split data (``train/ val/ test/`` folders, a CSV split column) keeps its split;
if it has no val part, val is carved from train the same stratified way.

Small classes: a class with fewer than 3 images cannot be in all three parts; its images all go to train
and ``Split.warnings`` says so. When scikit-learn still cannot stratify (a part smaller than the number of
classes), a ``DataError`` says which part and how to fix it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from .dataset import Dataset, load_dataset

__all__ = ["Split", "stratified_split", "kfold", "DEFAULT_RATIOS"]

DEFAULT_RATIOS = (0.7, 0.2, 0.1)
_MIN_PER_CLASS = 3  # one image for each of train, val, test


@dataclasses.dataclass
class Split:
    """Indices into ``dataset.samples`` for train, val and test."""

    dataset: Dataset
    train: list[int]
    val: list[int]
    test: list[int]
    seed: int | None = None
    ratios: tuple[float, float, float] | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def parts(self) -> dict[str, list[int]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def paths(self, part: str) -> list[str]:
        """Relative paths of one part (``"train"``, ``"val"`` or ``"test"``)."""
        return [self.dataset.relpath(i) for i in self.parts()[part]]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class in each part."""
        return {name: self.dataset.counts(idx) for name, idx in self.parts().items()}

    def to_dict(self) -> dict:
        return {
            "data_root": str(self.dataset.source or self.dataset.root),
            "classes": list(self.dataset.classes),
            "seed": self.seed,
            "ratios": list(self.ratios) if self.ratios else None,
            "dataset_sha256": self.dataset.sha256(),
            **{name: self.paths(name) for name in ("train", "val", "test")},
        }

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON of relative paths (the run folder's ``split.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, dataset: Dataset | None = None) -> "Split":
        """Read a saved split; without ``dataset`` the data is loaded from the saved ``data_root``.

        Every listed file must be in the dataset and the classes must match, else ``DataError``.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"split file not found: {path}", hint="check the path") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read split file {path}: {exc}") from exc
        for key in ("train", "val", "test"):
            if not isinstance(data.get(key), list):
                raise DataError(f"{path} has no '{key}' list", hint="write it with Split.save")
        if dataset is None:
            if "data_root" not in data:
                raise DataError(f"{path} has no data_root", hint="pass the dataset: Split.load(path, dataset)")
            dataset = load_dataset(data["data_root"])
        if "classes" in data and list(data["classes"]) != list(dataset.classes):
            raise DataError(
                f"{path} was made for classes {data['classes']} but the dataset has {list(dataset.classes)}",
                hint="make a new split for this dataset",
            )
        index = {dataset.relpath(i): i for i in range(len(dataset))}
        parts = {}
        for key in ("train", "val", "test"):
            missing = [p for p in data[key] if p not in index]
            if missing:
                raise DataError(
                    f"{path}: {len(missing)} {key} file(s) are not in {dataset.source or dataset.root} "
                    f"(first: {missing[0]})",
                    hint="restore the files or make a new split",
                )
            parts[key] = [index[p] for p in data[key]]
        ratios = tuple(data["ratios"]) if data.get("ratios") else None
        warnings = []
        if data.get("dataset_sha256") and data["dataset_sha256"] != dataset.sha256():
            warnings.append(f"the dataset changed since {path.name} was written (files added, removed or edited); "
                            "the listed files are all still there")
        return cls(dataset, parts["train"], parts["val"], parts["test"], seed=data.get("seed"), ratios=ratios,
                   warnings=warnings)


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3:
        raise DataError(f"split ratios need three numbers (train, val, test), got {list(ratios)}",
                        hint="e.g. ratios=(0.7, 0.2, 0.1)")
    r = tuple(float(x) for x in ratios)
    if any(x < 0 for x in r) or r[0] <= 0 or not math.isclose(sum(r), 1.0, abs_tol=1e-6):
        raise DataError(f"split ratios {list(ratios)} must be non-negative, with train > 0, and sum to 1",
                        hint="e.g. ratios=(0.7, 0.2, 0.1)")
    return r  # type: ignore[return-value]


def _cut(idx: np.ndarray, y: np.ndarray, n_cut: int, seed: int, part: str,
         dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, cut) with ``n_cut`` images in ``cut``, stratified on ``y``."""
    from sklearn.model_selection import train_test_split

    if n_cut <= 0 or len(idx) == 0:
        return idx, idx[:0]
    n_classes = len(np.unique(y))
    if n_cut < n_classes or len(idx) - n_cut < n_classes:
        raise DataError(
            f"cannot stratify {dataset.source or dataset.root}: the {part} part would hold {n_cut} of {len(idx)} "
            f"images, fewer than the {n_classes} classes it must represent",
            hint="add images, or raise that part's ratio (e.g. ratios=(0.6, 0.2, 0.2))",
        )
    try:
        # an integer test_size: the part sizes are exactly round(ratio * n), free of float rounding
        rest, cut = train_test_split(idx, test_size=int(n_cut), random_state=seed, shuffle=True, stratify=y)
    except ValueError as exc:  # only reached for cases the checks above do not foresee
        raise DataError(f"cannot stratify {dataset.source or dataset.root} for the {part} part: {exc}",
                        hint="add images to the smallest classes or change the ratios") from exc
    return np.sort(rest), np.sort(cut)


def stratified_split(dataset: Dataset, ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0) -> Split:
    """Split ``dataset`` into train/val/test, stratified by class and reproducible for a given ``seed``.

    >>> split = stratified_split(load_dataset("digits"), (0.7, 0.2, 0.1), seed=0)   # doctest: +SKIP
    >>> len(split.train), len(split.val), len(split.test)                            # doctest: +SKIP
    (1258, 359, 180)
    >>> split.save("run/split.json")                                                 # doctest: +SKIP
    """
    r = _check_ratios(ratios)
    y_all = dataset.targets()
    warnings: list[str] = []

    if dataset.presplit:
        train = np.array(dataset.indices("train"), dtype=np.int64)
        val = np.array(dataset.indices("val"), dtype=np.int64)
        test = np.array(dataset.indices("test"), dtype=np.int64)
        if len(val) == 0 and r[1] > 0:
            frac = r[1] / (r[0] + r[1])
            train, val = _cut(train, y_all[train], round(frac * len(train)), seed, "val", dataset)
            warnings.append(f"no val split in the data: {len(val)} images carved from train ({frac:.0%})")
        return Split(dataset, train.tolist(), val.tolist(), test.tolist(), seed=seed, ratios=r, warnings=warnings)

    idx = np.arange(len(dataset), dtype=np.int64)
    counts = np.bincount(y_all + 1)  # +1: label -1 (no label, multi-label only) gets its own group
    small_groups = [g for g, n in enumerate(counts) if 0 < n < _MIN_PER_CLASS]
    needs = sum(1 for x in r if x > 0)
    keep_in_train = np.zeros(0, dtype=np.int64)
    if needs > 1 and small_groups:
        small = np.isin(y_all + 1, small_groups)
        keep_in_train, idx = idx[small], idx[~small]
        names = [dataset.classes[g - 1] if g > 0 else "(no label)" for g in small_groups]
        warnings.append(
            f"class{'es' * (len(names) > 1)} {', '.join(names)} ha{'ve' if len(names) > 1 else 's'} fewer than "
            f"{_MIN_PER_CLASS} images: all of them go to train, none to val/test"
        )
    n = len(idx)
    rest, test = _cut(idx, y_all[idx], round(r[2] * n), seed, "test", dataset)
    train, val = _cut(rest, y_all[rest], round(r[1] * n), seed, "val", dataset)
    train = np.sort(np.concatenate([train, keep_in_train]))
    return Split(dataset, train.tolist(), val.tolist(), test.tolist(), seed=seed, ratios=r, warnings=warnings)


def kfold(dataset: Dataset, indices: Sequence[int] | Split | None = None, k: int = 5,
          seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Stratified k-fold over ``indices`` (a ``Split`` means its train + val; test stays held out).

    Returns ``k`` pairs ``(train_indices, val_indices)`` of dataset indices; the val parts are disjoint
    and together cover ``indices``. Every class needs at least ``k`` images, else ``DataError``.
    """
    from sklearn.model_selection import StratifiedKFold

    if isinstance(indices, Split):
        idx = np.array(sorted(indices.train + indices.val), dtype=np.int64)
    elif indices is None:
        idx = np.arange(len(dataset), dtype=np.int64)
    else:
        idx = np.asarray(list(indices), dtype=np.int64)
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise DataError(f"k-fold needs k >= 2, got {k}", hint="e.g. k=5")
    y = dataset.targets(idx)
    groups, counts = np.unique(y, return_counts=True)
    if counts.min() < k:
        g = groups[counts.argmin()]
        name = dataset.classes[g] if g >= 0 else "(no label)"
        raise DataError(
            f"cannot make {k} stratified folds: class '{name}' has only {counts.min()} images",
            hint=f"use k <= {counts.min()} or add images to that class",
        )
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(idx[a].tolist(), idx[b].tolist()) for a, b in folds.split(np.zeros(len(idx)), y)]

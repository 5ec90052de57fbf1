"""Datasets on disk: an ImageFolder, pre-split ``train/ val/ test/`` folders, or a CSV.

``load_dataset`` scans, decodes every image once (in a few threads) and skips what cannot be read,
listing it in ``Dataset.skipped``. What makes a dataset unusable (a missing path, no classes, a single
class, a class without a single readable image, a CSV without the needed columns or with an unknown
split name) is a ``DataError`` naming the file and the fix.

Layouts::

    root/<class>/**/*.jpg                      ImageFolder (sub-folders inside a class are included)
    root/{train,val,test}/<class>/**/*.jpg     pre-split ("valid"/"validation" count as val)
    labels.csv  with header  path,label[,split]  paths relative to the CSV; "a;b" labels when multi-label

Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are ignored.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from .images import is_image_file

__all__ = ["Sample", "Dataset", "load_dataset", "SPLITS", "SPLIT_ALIASES", "scan_files", "verify_files"]

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_PATH_COLUMNS = ("path", "file", "filename", "filepath", "image")
_LABEL_COLUMNS = ("label", "labels", "class", "category")
_SPLIT_COLUMNS = ("split", "subset")
_VERIFY_MODES = ("full", "header", "none")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image: its path, its class indices (one unless multi-label) and its split if the data fixes one."""

    path: Path
    labels: tuple[int, ...]
    split: str | None = None

    @property
    def label(self) -> int:
        """The first (for single-label data: the only) class index, -1 for an image without labels."""
        return self.labels[0] if self.labels else -1


@dataclasses.dataclass
class Dataset:
    """A scanned dataset. ``samples`` hold absolute paths; ``relpath`` gives them relative to ``root``."""

    root: Path
    classes: tuple[str, ...]
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    layout: str = "imagefolder"  # "imagefolder" | "presplit" | "csv"
    multi_label: bool = False
    source: Path | None = None  # the folder or CSV file given to load_dataset

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.source or self.root)!r}, layout={self.layout!r}, classes={len(self.classes)}, "
            f"samples={len(self.samples)}, skipped={len(self.skipped)})"
        )

    @property
    def presplit(self) -> bool:
        """True when every sample carries a split (pre-split folders or a CSV split column)."""
        return bool(self.samples) and all(s.split is not None for s in self.samples)

    def relpath(self, item: int | Sample) -> str:
        """Path of a sample relative to ``root``, with forward slashes (stable across OSes)."""
        sample = self.samples[item] if isinstance(item, (int, np.integer)) else item
        try:
            return sample.path.relative_to(self.root).as_posix()
        except ValueError:  # a CSV may point outside its folder
            return Path(os.path.relpath(sample.path, self.root)).as_posix()

    def targets(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """First label of each sample (of ``indices`` if given) as an int array; -1 for no label."""
        idx = range(len(self.samples)) if indices is None else indices
        return np.array([self.samples[i].label for i in idx], dtype=np.int64)

    def indices(self, split: str) -> list[int]:
        """Indices of the samples whose fixed split is ``split``."""
        return [i for i, s in enumerate(self.samples) if s.split == split]

    def counts(self, indices: Iterable[int] | None = None) -> dict[str, int]:
        """Images per class (a multi-label image counts for each of its labels)."""
        out = dict.fromkeys(self.classes, 0)
        idx = range(len(self.samples)) if indices is None else indices
        for i in idx:
            for label in self.samples[i].labels:
                out[self.classes[label]] += 1
        return out

    def sha256(self) -> str:
        """Hash of relative paths, labels, splits and file sizes: changes when the data changes."""
        h = hashlib.sha256()
        h.update("\n".join(self.classes).encode())
        rows = []
        for s in self.samples:
            try:
                size = s.path.stat().st_size
            except OSError:
                size = -1
            names = ";".join(self.classes[i] for i in s.labels)
            rows.append(f"{self.relpath(s)}\t{names}\t{s.split or ''}\t{size}")
        for row in sorted(rows):
            h.update(b"\n" + row.encode())
        return h.hexdigest()


# --------------------------------------------------------------------------------------------- scanning


@dataclasses.dataclass
class _Entry:
    path: Path
    labels: tuple[str, ...]
    split: str | None


@dataclasses.dataclass
class _Scan:
    """What is on disk, before any usability rule is applied (``check_dataset`` reports on this)."""

    root: Path
    source: Path
    layout: str
    entries: list[_Entry]
    skipped: list[tuple[Path, str]]
    # (split, class) for every class folder found, so an empty one can be named
    folders: dict[tuple[str | None, str], Path] = dataclasses.field(default_factory=dict)
    classes: tuple[str, ...] = ()
    # real paths of the root, split and class folders and of every folder walked: each is walked once
    walked: set[Path] = dataclasses.field(default_factory=set)


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_files(folder: Path, dataset_root: Path, scan: "_Scan") -> Iterable[Path]:
    """Files below a class folder. Links to folders are followed only while they stay inside the dataset
    (or the class folder's own real location) and lead to a folder not walked yet (not the root, a split, a
    class or a folder seen before): a link to ``/etc``, a loop, or a second path to another class's images
    is listed in ``scan.skipped`` instead of being walked."""
    allowed = (dataset_root.resolve(), folder.resolve())
    seen, skipped = scan.walked, scan.skipped
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            sub = Path(dirpath, d)
            real = sub.resolve()
            if sub.is_symlink() and not any(real == a or a in real.parents for a in allowed):
                skipped.append((sub, f"symbolic link to a folder outside the dataset ({real}); not followed"))
            elif real in seen:
                skipped.append((sub, f"symbolic link to a folder already walked ({real}: a loop or a second path to it); not followed"))
            else:
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath, name)


def _scan_imagefolder(root: Path, split: str | None, scan: _Scan) -> None:
    base = root / split if split else root
    for f in sorted(p for p in base.iterdir() if p.is_file() and not p.name.startswith(".")):
        scan.skipped.append((f, "not inside a class folder"))
    for cls_dir in _visible_dirs(base):
        scan.folders[(split, cls_dir.name)] = cls_dir
        for f in _class_files(cls_dir, root, scan):
            if is_image_file(f):
                scan.entries.append(_Entry(f, (cls_dir.name,), SPLIT_ALIASES.get(split) if split else None))
            else:
                scan.skipped.append((f, f"not an image file (extension '{f.suffix or '(none)'}')"))


def _scan_folder(root: Path) -> _Scan:
    subdirs = _visible_dirs(root)
    split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_ALIASES]
    scan = _Scan(root=root, source=root, layout="imagefolder", entries=[], skipped=[])
    scan.walked = {p.resolve() for p in [root, *subdirs, *(c for d in split_dirs for c in _visible_dirs(d))]}
    if split_dirs and any(SPLIT_ALIASES[d.name.lower()] == "train" for d in split_dirs):
        others = [d.name for d in subdirs if d not in split_dirs]
        if others:
            raise DataError(
                f"{root} mixes split folders ({', '.join(d.name for d in split_dirs)}) with other folders "
                f"({', '.join(others)})",
                hint="put every class folder inside train/ val/ test/, or use a plain ImageFolder root/<class>/",
            )
        seen: dict[str, str] = {}
        for d in split_dirs:
            canonical = SPLIT_ALIASES[d.name.lower()]
            if canonical in seen:
                raise DataError(f"{root} has both {seen[canonical]}/ and {d.name}/ for the {canonical} split",
                                hint="merge them into one folder")
            seen[canonical] = d.name
        scan.layout = "presplit"
        for f in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
            scan.skipped.append((f, "not inside a split folder"))
        for d in split_dirs:
            _scan_imagefolder(root, d.name, scan)
    else:
        _scan_imagefolder(root, None, scan)
    scan.classes = tuple(sorted({cls for (_, cls) in scan.folders}))
    return scan


def _pick_column(fields: list[str], names: Sequence[str]) -> str | None:
    lowered = {f.strip().lower(): f for f in fields}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _scan_csv(csv_path: Path, multi_label: bool) -> _Scan:
    root = csv_path.parent
    scan = _Scan(root=root, source=csv_path, layout="csv", entries=[], skipped=[])
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # utf-8-sig: spreadsheets write a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {csv_path}: {exc}", hint="save the CSV as UTF-8 text") from exc
    reader = csv.DictReader(text.splitlines())
    fields = list(reader.fieldnames or [])
    path_col = _pick_column(fields, _PATH_COLUMNS)
    label_col = _pick_column(fields, _LABEL_COLUMNS)
    split_col = _pick_column(fields, _SPLIT_COLUMNS)
    for col, name in ((path_col, "path"), (label_col, "label")):
        if col is None:
            found = ", ".join(repr(f) for f in fields) or "nothing"
            raise DataError(
                f"{csv_path}: missing column '{name}' (header has {found})",
                hint="the first line must be a header such as: path,label,split",
            )
    rows: list[tuple[int, Path, tuple[str, ...], str | None]] = []
    for row in reader:
        line = reader.line_num
        raw_path = (row.get(path_col) or "").strip()
        if not raw_path and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        if not raw_path:
            raise DataError(f"{csv_path}:{line}: empty path", hint="every row needs a file path in the 'path' column")
        raw_label = (row.get(label_col) or "").strip()
        labels = tuple(dict.fromkeys(x.strip() for x in raw_label.split(";") if x.strip()))  # ordered, unique
        if not multi_label:
            if not labels:
                raise DataError(f"{csv_path}:{line}: no label for {raw_path}",
                                hint="give every row a label, or load with multi_label=True for images without labels")
            if len(labels) > 1:
                raise DataError(f"{csv_path}:{line}: several labels '{raw_label}' in a single-label dataset",
                                hint="load with multi_label=True (CLI: --multi-label) or keep one label per row")
        split = None
        if split_col is not None:
            raw_split = (row.get(split_col) or "").strip()
            if raw_split:
                split = SPLIT_ALIASES.get(raw_split.lower())
                if split is None:
                    raise DataError(f"{csv_path}:{line}: unknown split '{raw_split}'",
                                    hint="use train, val or test (or leave the split column empty everywhere)")
        path = Path(raw_path)
        path = path if path.is_absolute() else root / path
        rows.append((line, path, labels, split))
    if split_col is not None:
        with_split = [r for r in rows if r[3] is not None]
        if with_split and len(with_split) != len(rows):
            line = next(r[0] for r in rows if r[3] is None)
            raise DataError(f"{csv_path}:{line}: no split given while other rows have one",
                            hint="give every row a split (train/val/test) or leave the column empty everywhere")
    for line, path, labels, split in rows:
        if not path.exists():
            scan.skipped.append((path, f"listed at {csv_path.name}:{line} but not found"))
        elif not path.is_file():
            scan.skipped.append((path, f"listed at {csv_path.name}:{line} but is not a file"))
        else:
            scan.entries.append(_Entry(path, labels, split))
    scan.classes = tuple(sorted({c for _, _, labels, _ in rows for c in labels}))
    return scan


def scan_files(path: str | Path, *, multi_label: bool = False) -> _Scan:
    """Find the files of a dataset and their labels without decoding or judging them."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"dataset not found: {path}", hint="check the path; it must be a folder or a .csv file")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{path} is a file but not a .csv",
                            hint="give a folder (root/<class>/*) or a CSV with header path,label[,split]")
        return _scan_csv(path.resolve(), multi_label)
    return _scan_folder(path.resolve())


# ------------------------------------------------------------------------------------------ verifying


def _header_ok(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty (0 bytes)"
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header is parsed on open; touching size is enough
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"corrupt ({exc})"
    return None


def _full_ok(path: Path) -> str | None:
    from .images import probe_image

    info = probe_image(path)
    return None if info.ok else info.error


def verify_files(paths: Sequence[Path], *, verify: str = "full", desc: str = "checking images") -> dict[Path, str]:
    """Problems found in ``paths``: ``{path: reason}`` for files that do not decode.

    ``verify="full"`` decodes every image (catches truncated files), ``"header"`` only parses headers,
    ``"none"`` trusts extensions. Decoding runs in a few threads (Pillow releases the GIL while decoding).
    """
    if verify not in _VERIFY_MODES:
        raise DataError(f"unknown verify mode '{verify}'", hint=f"use one of: {', '.join(_VERIFY_MODES)}")
    if verify == "none" or not paths:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    check = _full_ok if verify == "full" else _header_ok
    workers = max(1, min(4, (os.cpu_count() or 2)))
    problems: dict[Path, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(check, paths, chunksize=32)
        # progress only when it is worth looking at (and only on a terminal: disable=None)
        for path, reason in zip(paths, tqdm(results, total=len(paths), desc=desc, unit="img",
                                            disable=None if len(paths) > 2000 else True, leave=False)):
            if reason is not None:
                problems[path] = reason
    return problems


# -------------------------------------------------------------------------------------------- loading


def load_dataset(path: str | Path, *, multi_label: bool = False, verify: str = "full") -> Dataset:
    """Load an ImageFolder, pre-split ``train/ val/ test/`` folders or a CSV ``path,label[,split]``.

    Files that do not decode are skipped and listed in ``Dataset.skipped`` with the reason.
    ``verify`` is ``"full"`` (decode every image once; default), ``"header"`` or ``"none"``.

    >>> ds = load_dataset("digits")            # doctest: +SKIP
    >>> ds.classes[:3], len(ds), ds.skipped    # doctest: +SKIP
    (('0', '1', '2'), 1797, [])
    """
    scan = scan_files(path, multi_label=multi_label)
    where = scan.source
    problems = verify_files([e.path for e in scan.entries], verify=verify)
    skipped = list(scan.skipped) + [(p, r) for p, r in problems.items()]
    entries = [e for e in scan.entries if e.path not in problems]

    if not scan.classes:
        what = "rows" if scan.layout == "csv" else "class folders"
        csvs = sorted(scan.root.glob("*.csv")) if scan.layout != "csv" else []
        hint = (f"to use the CSV, pass it instead of the folder: {csvs[0]}" if csvs else
                "expected root/<class>/<image> folders, train/ val/ test/ of those, or a CSV path,label")
        raise DataError(f"{where} has no {what}", hint=hint)
    if len(scan.classes) == 1:
        raise DataError(f"{where} has a single class '{scan.classes[0]}'; a classifier needs at least two",
                        hint="add a folder of images for another class (e.g. 'background' or 'other')")
    per_folder: dict[tuple[str | None, str], int] = dict.fromkeys(scan.folders, 0)
    per_class = dict.fromkeys(scan.classes, 0)
    for e in entries:
        for c in e.labels:
            per_class[c] += 1
        if scan.layout != "csv":
            per_folder[(e.split if scan.layout == "imagefolder" else _folder_split(scan, e), e.labels[0])] += 1
    for key, n in per_folder.items():
        if n == 0:
            folder = scan.folders[key]
            had = sum(1 for p, _ in skipped if folder in p.parents)
            detail = f" ({had} unreadable file{'s' * (had != 1)} skipped)" if had else ""
            raise DataError(f"class folder {folder} has no readable images{detail}",
                            hint="add images to it or remove the folder")
    for c, n in per_class.items():
        if n == 0:
            raise DataError(f"class '{c}' in {where} has no readable images",
                            hint="fix or remove the rows of that class")
    if scan.layout == "presplit":
        train = {e.labels[0] for e in entries if e.split == "train"}
        missing = [c for c in scan.classes if c not in train]
        if missing:
            raise DataError(f"{where}: class{'es' * (len(missing) > 1)} {', '.join(missing)} "
                            f"{'have' if len(missing) > 1 else 'has'} no images in the train split",
                            hint="add training images for every class found in val/ or test/")

    index = {c: i for i, c in enumerate(scan.classes)}
    samples = [Sample(e.path, tuple(index[c] for c in e.labels), e.split) for e in entries]
    return Dataset(root=scan.root, classes=scan.classes, samples=samples, skipped=skipped, layout=scan.layout,
                   multi_label=multi_label, source=scan.source)


def _folder_split(scan: _Scan, entry: _Entry) -> str | None:
    """The split folder name (as on disk) an entry of a pre-split dataset lives in."""
    rel = entry.path.relative_to(scan.root)
    return rel.parts[0]

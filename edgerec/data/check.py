"""``check_dataset``: what a careful engineer looks at before training, in one report.

Per-class (and per-split) counts, files that do not decode (empty, truncated, corrupt, not images),
exact duplicates by content hash (within a class: wasted; across classes: label conflicts; across
splits: test images the model has seen in training), image modes that get converted, tiny and
extreme-aspect images, class imbalance, classes under the 200 images practitioners quote as a minimum,
and image-size statistics.

A dataset is *unusable* only when training cannot start: no classes, a single class, or a class without
a readable image. Everything else is a warning.
"""

from __future__ import annotations

import dataclasses
import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from .dataset import _Scan, _folder_split, scan_files
from .images import ImageInfo, probe_image

__all__ = ["CheckReport", "check_dataset", "MIN_IMAGES_PER_CLASS", "TINY_SIDE", "MAX_ASPECT"]

MIN_IMAGES_PER_CLASS = 200  # the per-class minimum practitioners commonly quote
TINY_SIDE = 32  # below this many pixels on a side, an image carries little for a 224 px model
MAX_ASPECT = 4.0  # longer side over shorter side; beyond it a centre crop loses most of the image
_LIST_LIMIT = 20  # rows of skipped files printed; the JSON has all


@dataclasses.dataclass
class CheckReport:
    """The findings of ``check_dataset``; ``to_dict()`` is JSON-ready, ``table()`` is for people."""

    path: str
    layout: str
    classes: list[str]
    counts: dict[str, int]
    split_counts: dict[str, dict[str, int]]
    files: int
    readable: int
    problems: list[dict]  # {"path", "kind", "reason"}
    duplicates: list[dict]  # {"sha256", "paths", "classes", "splits"}
    modes: dict[str, int]
    tiny: list[dict]  # {"path", "width", "height"}
    extreme_aspect: list[dict]
    sizes: dict
    imbalance_ratio: float | None
    small_classes: dict[str, int]
    errors: list[str]
    warnings: list[str]
    min_images_per_class: int = MIN_IMAGES_PER_CLASS

    @property
    def usable(self) -> bool:
        return not self.errors

    @property
    def label_conflicts(self) -> list[dict]:
        """Duplicate groups whose copies carry different labels."""
        return [d for d in self.duplicates if len(d["classes"]) > 1]

    @property
    def split_leaks(self) -> list[dict]:
        """Duplicate groups whose copies sit in different splits."""
        return [d for d in self.duplicates if len(d["splits"]) > 1]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["usable"] = self.usable
        d["label_conflicts"] = len(self.label_conflicts)
        d["split_leaks"] = len(self.split_leaks)
        return d

    def table(self, width: int = 100) -> str:
        """The report as plain text tables (rich), as ``edgerec data check`` prints it."""
        from rich.console import Console

        buf = io.StringIO()
        self.render(Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False))
        return buf.getvalue()

    def render(self, console) -> None:
        """Print the report on a rich ``Console`` (colours when it is a terminal)."""
        from rich.table import Table

        state = "[green]usable[/]" if self.usable else "[bold red]NOT usable[/]"
        console.print(f"[bold]{self.path}[/]  ({self.layout}, {len(self.classes)} classes, "
                      f"{self.readable} readable of {self.files} files)  {state}")

        splits = [s for s in ("train", "val", "test") if s in self.split_counts]
        t = Table(title="images per class", title_justify="left")
        t.add_column("class")
        t.add_column("images", justify="right")
        for s in splits:
            t.add_column(s, justify="right")
        t.add_column("share", justify="right")
        t.add_column("note")
        total = max(1, sum(self.counts.values()))
        for c in self.classes:
            n = self.counts.get(c, 0)
            note = "[red]empty[/]" if n == 0 else (
                f"[yellow]< {self.min_images_per_class}[/]" if c in self.small_classes else "")
            t.add_row(c, str(n), *[str(self.split_counts[s].get(c, 0)) for s in splits], f"{n / total:.1%}", note)
        console.print(t)

        s = self.sizes
        if s.get("count"):
            t = Table(title="image sizes (pixels)", title_justify="left")
            for col in ("", "min", "p5", "median", "p95", "max"):
                t.add_column(col, justify="right")
            for axis in ("width", "height"):
                t.add_row(axis, *[str(s[axis][k]) for k in ("min", "p5", "median", "p95", "max")])
            console.print(t)
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in ((tuple(x["size"]), x["count"]) for x in s["common"]))
            console.print(f"most common sizes: {common}")
            console.print("modes: " + ", ".join(f"{m} ({n})" for m, n in sorted(self.modes.items(), key=lambda x: -x[1]))
                          + ("  [dim](all read as RGB)[/]" if set(self.modes) - {"RGB"} else ""))

        t = Table(title="findings", title_justify="left")
        t.add_column("finding")
        t.add_column("count", justify="right")
        t.add_column("example")
        rows = [
            ("unreadable or skipped files", self.problems, lambda p: f"{p['path']}: {p['reason']}"),
            ("duplicate groups (same bytes)", self.duplicates, lambda d: " = ".join(d["paths"][:2])),
            ("  of which label conflicts", self.label_conflicts, lambda d: " vs ".join(d["classes"])),
            ("  of which across splits", self.split_leaks, lambda d: " / ".join(d["splits"])),
            (f"tiny images (< {TINY_SIDE} px side)", self.tiny, lambda x: f"{x['path']} {x['width']}x{x['height']}"),
            (f"extreme aspect (> {MAX_ASPECT:g}:1)", self.extreme_aspect,
             lambda x: f"{x['path']} {x['width']}x{x['height']}"),
        ]
        for name, items, example in rows:
            style = "" if not items else "[yellow]"
            t.add_row(f"{style}{name}", str(len(items)), example(items[0]) if items else "")
        ratio = "n/a" if self.imbalance_ratio is None else f"{self.imbalance_ratio:.2f}"
        t.add_row("imbalance (largest / smallest class)", ratio, "")
        console.print(t)
        if self.problems:
            t = Table(title="files that will be skipped", title_justify="left")
            t.add_column("file")
            t.add_column("problem")
            for p in self.problems[:_LIST_LIMIT]:
                t.add_row(p["path"], p["reason"])
            if len(self.problems) > _LIST_LIMIT:
                t.add_row(f"... and {len(self.problems) - _LIST_LIMIT} more", "(all of them in --json)")
            console.print(t)
        for w in self.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        for e in self.errors:
            console.print(f"[bold red]error:[/] {e}")


def _stats(values: np.ndarray) -> dict:
    return {
        "min": int(values.min()),
        "p5": int(np.percentile(values, 5)),
        "median": int(np.median(values)),
        "p95": int(np.percentile(values, 95)),
        "max": int(values.max()),
    }


def _probe_all(paths: list[Path]) -> list[ImageInfo]:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(4) as pool:
        it = pool.map(lambda p: probe_image(p, digest=True), paths, chunksize=16)
        return list(tqdm(it, total=len(paths), desc="checking images", unit="img", leave=False,
                         disable=None if len(paths) > 500 else True))


def _skip_kind(reason: str) -> str:
    if reason.startswith("not an image"):
        return "not_image"
    if reason.startswith("not inside"):
        return "outside_class_folder"  # or outside a split folder, in pre-split data
    if reason.startswith("symbolic link"):
        return "link_not_followed"
    return "missing"


def check_dataset(path: str | Path, *, multi_label: bool = False, min_images: int = MIN_IMAGES_PER_CLASS) -> CheckReport:
    """Inspect a dataset (ImageFolder, pre-split folders or CSV) and report on it; never raises for bad files.

    A missing path or a malformed CSV still raises ``DataError`` (there is nothing to report on).

    >>> report = check_dataset("digits")     # doctest: +SKIP
    >>> report.usable, report.imbalance_ratio  # doctest: +SKIP
    (True, 1.04)
    """
    scan: _Scan = scan_files(path, multi_label=multi_label)

    def rel(p: Path) -> str:
        try:
            return p.relative_to(scan.root).as_posix()
        except ValueError:
            return str(p)

    t = _tally(scan, _probe_all([e.path for e in scan.entries]), rel)
    duplicates = _duplicates(scan, t.by_hash, rel)
    warnings, imbalance, small = _warnings(t.counts, duplicates, t.problems, min_images)
    sizes: dict = {"count": len(t.widths)}
    if t.widths:
        sizes["width"], sizes["height"] = _stats(np.array(t.widths)), _stats(np.array(t.heights))
        sizes["common"] = [{"size": [int(a), int(b)], "count": n}
                           for (a, b), n in Counter(zip(t.widths, t.heights)).most_common(5)]
    split_counts_out = {s: dict(t.split_counts[s]) for s in ("train", "val", "test") if s in t.split_counts}
    return CheckReport(
        path=str(scan.source), layout=scan.layout, classes=list(scan.classes), counts=t.counts,
        split_counts=split_counts_out, files=len(scan.entries) + len(scan.skipped), readable=len(t.widths),
        problems=t.problems, duplicates=duplicates, modes=dict(t.modes), tiny=t.tiny, extreme_aspect=t.extreme,
        sizes=sizes, imbalance_ratio=imbalance, small_classes=small, errors=_errors(scan, t, rel), warnings=warnings,
        min_images_per_class=min_images,
    )


@dataclasses.dataclass
class _Tally:
    """What one pass over the probed files counts."""

    problems: list
    counts: dict
    split_counts: dict
    folder_counts: dict
    modes: Counter = dataclasses.field(default_factory=Counter)
    by_hash: dict = dataclasses.field(default_factory=lambda: defaultdict(list))
    tiny: list = dataclasses.field(default_factory=list)
    extreme: list = dataclasses.field(default_factory=list)
    widths: list = dataclasses.field(default_factory=list)
    heights: list = dataclasses.field(default_factory=list)


def _tally(scan: _Scan, infos, rel) -> _Tally:
    t = _Tally(problems=[{"path": rel(p), "kind": _skip_kind(r), "reason": r} for p, r in scan.skipped],
               counts=dict.fromkeys(scan.classes, 0),
               split_counts=defaultdict(lambda: dict.fromkeys(scan.classes, 0)),
               folder_counts=dict.fromkeys(scan.folders, 0))
    for j, (entry, info) in enumerate(zip(scan.entries, infos)):
        if not info.ok:
            t.problems.append({"path": rel(entry.path), "kind": info.kind, "reason": info.error})
            continue
        t.by_hash[info.sha256].append(j)
        for c in entry.labels:
            t.counts[c] += 1
            if entry.split:
                t.split_counts[entry.split][c] += 1
        if scan.layout != "csv":
            key = (_folder_split(scan, entry) if scan.layout == "presplit" else None, entry.labels[0])
            t.folder_counts[key] += 1
        t.modes[info.mode] += 1
        t.widths.append(info.width)
        t.heights.append(info.height)
        if min(info.width, info.height) < TINY_SIDE:
            t.tiny.append({"path": rel(entry.path), "width": info.width, "height": info.height})
        if max(info.width, info.height) > MAX_ASPECT * max(1, min(info.width, info.height)):
            t.extreme.append({"path": rel(entry.path), "width": info.width, "height": info.height})
    return t


def _duplicates(scan: _Scan, by_hash: dict, rel) -> list[dict]:
    """Identical files (by sha256), with the classes and splits they sit in."""
    duplicates = []
    for sha, members in by_hash.items():
        if len(members) > 1:
            entries = [scan.entries[j] for j in members]
            duplicates.append({
                "sha256": sha,
                "paths": [rel(e.path) for e in entries],
                "classes": sorted({";".join(e.labels) for e in entries}),
                "splits": sorted({e.split for e in entries if e.split}),
            })
    return sorted(duplicates, key=lambda d: d["paths"][0])


def _errors(scan: _Scan, t: _Tally, rel) -> list[str]:
    """What makes the data set unusable for training."""
    errors: list[str] = []
    where = str(scan.source)
    if not scan.classes:
        errors.append(f"{where} has no classes (expected root/<class>/<image>, train/ val/ test/, or a CSV)")
    elif len(scan.classes) == 1:
        errors.append(f"{where} has a single class '{scan.classes[0]}'; a classifier needs at least two")
    for (split, cls), n in sorted(t.folder_counts.items(), key=lambda x: (str(x[0][0]), x[0][1])):
        if n == 0:
            errors.append(f"class folder {rel(scan.folders[(split, cls)])} has no readable images")
    if scan.layout == "csv":
        for c, n in t.counts.items():
            if n == 0:
                errors.append(f"class '{c}' has no readable images")
    if scan.layout == "presplit":
        for c in scan.classes:
            if t.split_counts["train"].get(c, 0) == 0 and t.counts.get(c, 0) > 0:
                errors.append(f"class '{c}' has no images in the train split")
    return errors


def _warnings(counts: dict, duplicates: list[dict], problems: list[dict], min_images: int):
    """``(warnings, imbalance ratio, small classes)``: what training survives but a person should know."""
    warnings: list[str] = []
    nonzero = [n for n in counts.values() if n > 0]
    imbalance = round(max(nonzero) / min(nonzero), 3) if len(nonzero) >= 2 else None
    small = {c: n for c, n in counts.items() if n < min_images}
    if small:
        warnings.append(f"{len(small)} class{'es' * (len(small) > 1)} under {min_images} images "
                        f"(smallest: '{min(small, key=small.get)}' with {min(small.values())}); "
                        "expect noisy accuracy, or add images")
    if imbalance is not None and imbalance > 3:
        warnings.append(f"classes are imbalanced {imbalance:.1f}:1; consider more images for the small ones "
                        "or class-weighted loss")
    conflicts = [d for d in duplicates if len(d["classes"]) > 1]
    leaks = [d for d in duplicates if len(d["splits"]) > 1]
    if conflicts:
        warnings.append(f"{len(conflicts)} identical image(s) carry different labels (first: "
                        f"{' = '.join(conflicts[0]['paths'][:2])}); fix the labels")
    if leaks:
        warnings.append(f"{len(leaks)} identical image(s) appear in more than one split; test accuracy will be "
                        "optimistic")
    bad = [p for p in problems if p["kind"] in ("empty", "truncated", "corrupt", "unreadable")]
    if bad:
        warnings.append(f"{len(bad)} file(s) do not decode and will be skipped in training")
    return warnings, imbalance, small

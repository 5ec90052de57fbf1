"""Frames collected on a board (``edgerec run --collect``) in front of a person: a contact sheet per predicted
class and a CSV with an empty ``label`` column; then the rows a person labelled are copied into a training folder.

>>> r = write_review("field/")                        # field/review/<class>.png + field/review.csv  # doctest: +SKIP
>>> merge_review("field/", "data/")                   # after filling in the CSV's label column      # doctest: +SKIP
"""

from __future__ import annotations

import csv
import filecmp
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["write_review", "merge_review", "labelled_rows", "field_accuracy", "ReviewResult", "MergeResult", "CSV_NAME", "COLUMNS"]

CSV_NAME = "review.csv"
COLUMNS = ("path", "board", "predicted", "score", "reason", "label")


@dataclass
class ReviewResult:
    csv: Path
    sheets: dict[str, Path]  # predicted class -> PNG
    frames: int
    kept_labels: int  # rows whose label an earlier review.csv already had


@dataclass
class MergeResult:
    copied: list[Path] = field(default_factory=list)
    already_there: int = 0  # the same bytes were in TRAINING_DIR/<label>/ already


def _frames(folder: Path) -> list[dict]:
    """Every collect sidecar under ``folder`` (one level per board after ``data pull``), paths relative to it."""
    rows = []
    for side in sorted(folder.rglob("*.json")):
        rel = side.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] == "review":
            continue
        try:
            meta = json.loads(side.read_text())
            image = side.parent / meta["file"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a collect sidecar
        if image.is_file() and image.parent == side.parent:
            rows.append({"path": image.relative_to(folder).as_posix(), "board": rel.parts[0] if len(rel.parts) > 1 else "",
                         "predicted": str(meta.get("predicted", "")), "score": meta.get("score", ""),
                         "reason": ";".join(meta.get("reasons", [])), "label": ""})
    return rows


def _sheet(folder: Path, rows: list[dict], out: Path, cell: int = 128, cols: int = 8) -> Path:
    import cv2

    n = len(rows)
    canvas = np.full((((n + cols - 1) // cols) * (cell + 20), min(n, cols) * cell, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        y, x = (i // cols) * (cell + 20), (i % cols) * cell
        img = cv2.imread(str(folder / row["path"]))
        if img is None:
            canvas[y:y + cell, x:x + cell] = (40, 40, 220)  # unreadable: a red cell
        else:
            s = cell / max(img.shape[:2])
            img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
            oy, ox = (cell - img.shape[0]) // 2, (cell - img.shape[1]) // 2
            canvas[y + oy:y + oy + img.shape[0], x + ox:x + ox + img.shape[1]] = img
        text = f"{i + 1} {row['predicted'][:10]} {float(row['score'] or 0):.2f}"
        cv2.putText(canvas, text, (x + 3, y + cell + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(out), canvas):
        raise DataError(f"cannot write the contact sheet {out}")
    return out


def write_review(folder: str | Path) -> ReviewResult:
    """``folder/review/<predicted>.png`` (numbered thumbnails with the predicted label and score) and
    ``folder/review.csv`` (path, predicted, score, reason, label). Labels already filled in an earlier
    ``review.csv`` are kept, so running it again after more frames arrived loses no work."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder", hint="give the folder edgerec run --collect wrote")
    rows = _frames(folder)
    if not rows:
        raise DataError(f"no collected frames in {folder} (no <name>.json beside an image)",
                        hint="point at the folder of edgerec run --collect DIR")
    path = folder / CSV_NAME
    old = {r["path"]: r.get("label", "") for r in _read_csv(path)} if path.is_file() else {}
    for r in rows:
        r["label"] = old.get(r["path"], "")
    sheets_dir = folder / "review"
    sheets_dir.mkdir(exist_ok=True)
    sheets = {}
    for cls in sorted({r["predicted"] for r in rows}):
        mine = [r for r in rows if r["predicted"] == cls]
        sheets[cls] = _sheet(folder, mine, sheets_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cls).lstrip('.') or '_'}.png")
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    return ReviewResult(path, sheets, len(rows), sum(1 for r in rows if r["label"]))


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "label" not in rows[0]:
        raise DataError(f"{path} has no 'label' column", hint=f"columns: {', '.join(COLUMNS)}")
    return rows


def _csv_path(folder: str | Path) -> Path:
    path = Path(folder) / CSV_NAME
    if not path.is_file():
        raise DataError(f"no {CSV_NAME} in {folder}", hint=f"run edgerec data review {folder} and fill in its label column")
    return path


def labelled_rows(folder: str | Path) -> list[tuple[dict, Path]]:
    """The rows of ``folder/review.csv`` whose label is filled in (stripped), each with its frame's path. A row whose
    path leaves ``folder`` or whose frame is gone is refused (``DataError``) before the caller does anything."""
    folder = Path(folder)
    path = _csv_path(folder)
    out = []
    for r in _read_csv(path):
        label = (r.get("label") or "").strip()
        if not label:
            continue
        name = r.get("path") or ""
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:  # a CSV cannot point outside the folder
            raise DataError(f"{path}: {name!r} is not a path inside {folder}", hint="keep the path column as written")
        if not (folder / rel).is_file():
            raise DataError(f"{path}: {name} is not in {folder}", hint="remove the row or restore the frame")
        out.append(({**r, "label": label}, folder / rel))
    return out


def merge_review(folder: str | Path, into: str | Path) -> MergeResult:
    """Copy every frame whose ``label`` is filled in ``folder/review.csv`` into ``into/<label>/``. Labels are
    checked as folder names first (all of them, before anything is copied); nothing is ever overwritten."""
    from ..capture.store import check_label, write_new

    into = Path(into)
    rows = labelled_rows(folder)
    for r, _ in rows:
        try:
            check_label(r["label"])
        except ConfigError as exc:
            raise DataError(f"{Path(folder) / CSV_NAME}: row with label {r['label']!r}: {exc}",
                            hint="correct the label column and run again") from None
    out = MergeResult()
    for r, src in rows:
        label = r["label"]
        dest_dir = into / label
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest, n = dest_dir / src.name, 1
        while dest.exists():
            if filecmp.cmp(src, dest, shallow=False):
                out.already_there += 1
                break
            n += 1
            dest = dest_dir / f"{src.stem}_{n}{src.suffix}"
        else:
            write_new(dest, src.read_bytes())
            out.copied.append(dest)
    return out


def field_accuracy(folder: str | Path) -> dict:
    """How often the deployed model was right on the frames a person labelled in ``folder/review.csv``, per board
    (the first folder under ``folder``, as ``data pull`` lays them out; ``""`` for a single board's folder) and in all.

    The collected frames are mostly ones the model doubted, so their accuracy understates the field accuracy;
    the ``random`` figures count only the frames kept by the random share, an unbiased (if small) sample.
    Accuracies are fractions; ``None`` where no frame was labelled.
    """
    path = _csv_path(folder)
    tally: dict[str, list[int]] = {}
    for r in _read_csv(path):
        label = (r.get("label") or "").strip()
        if not label:
            continue
        right = int(label == (r.get("predicted") or ""))
        rand = "random" in (r.get("reason") or "").split(";")
        for key in (r.get("board") or "", "*all*"):
            t = tally.setdefault(key, [0, 0, 0, 0])
            t[0] += 1
            t[1] += right
            t[2] += rand
            t[3] += right and rand

    def figures(t: list[int]) -> dict:
        return {"labelled": t[0], "correct": t[1], "accuracy": t[1] / t[0] if t[0] else None,
                "random_labelled": t[2], "random_accuracy": t[3] / t[2] if t[2] else None}

    everything = tally.pop("*all*", [0, 0, 0, 0])
    return {"boards": {b: figures(t) for b, t in sorted(tally.items())}, "all": figures(everything)}

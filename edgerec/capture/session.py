"""``capture``: frames from a source into ``DIR/<label>/``, good ones only, until a target, a count or a time.

Each kept image gets one line in the class folder's hidden index ``.edgerec-capture.jsonl`` (source, time,
host, ROI, frame size, hash, sharpness, brightness). One index per class folder rather than a sidecar per
image: the dataset scanner ignores hidden files, so ``edgerec data check`` and training see a clean
ImageFolder, and a person sorting images by hand never meets half of the files being JSON. An index line
whose image was deleted or moved is harmless: readers go by the images.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, SourceError
from ..runtime.image import IMAGE_EXTENSIONS
from ..runtime.roi import Roi
from .quality import QualityLimits, hamming, measure, rejection
from .store import IMAGE_FORMATS, StorageFull, append_line, check_label, encode_image, frame_stem, free_bytes, host_name, write_new

__all__ = ["CaptureOptions", "CaptureSummary", "capture", "INDEX_NAME", "count_images"]

INDEX_NAME = ".edgerec-capture.jsonl"


@dataclass(frozen=True)
class CaptureOptions:
    label: str
    fps: float = 2.0  # kept images per second at most (0: no limit); files: in the video's own time
    target: int = 200  # images the class should have, counting those already there (0: no target)
    max_images: int | None = None  # new images this run
    seconds: float | None = None  # wall-clock time this run
    dedupe_bits: int = 6  # within this many bits (of 64) of a recent kept image: a near-duplicate (-1: off)
    dedupe_window: int = 200  # how many recent kept images of the class a frame is compared with
    roi: Roi | None = None  # keep only this region (what the model will classify)
    limits: QualityLimits = field(default_factory=QualityLimits)
    image_format: str = "jpg"
    min_free_mb: float = 100.0  # stop before the disk gets this full
    source: str = ""  # recorded in the index (default: the source's own target)

    def __post_init__(self):
        check_label(self.label)
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"unknown image format '{self.image_format}'", hint=f"use one of {', '.join(IMAGE_FORMATS)}")
        for name in ("fps", "target", "min_free_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(f"max_images must be at least 1, got {self.max_images}")
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError(f"seconds must be more than 0, got {self.seconds}")


@dataclass
class CaptureSummary:
    label: str
    folder: str
    existing: int  # images in the class folder before this run
    target: int
    kept: int = 0
    examined: int = 0  # frames looked at (after the rate limit)
    rate_skipped: int = 0  # frames that came sooner than --fps allows
    rejected: dict[str, int] = field(default_factory=lambda: {"duplicate": 0, "blurry": 0, "dark": 0, "overexposed": 0})
    stopped_by: str = "end of source"
    message: str = ""  # why the run stopped early (disk full, source lost), with the fix
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.existing + self.kept

    def to_dict(self) -> dict:
        return {**self.__dict__, "total": self.total}


def count_images(folder: Path) -> int:
    """Visible image files directly in ``folder`` (what the dataset scanner would count)."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _recent_hashes(index: Path, n: int) -> deque:
    """The last ``n`` hashes from an earlier run's index: a new run does not re-take what is already there."""
    recent: deque = deque(maxlen=max(1, n))
    if index.is_file():
        for line in index.read_text(errors="replace").splitlines()[-n:]:
            try:
                recent.append(int(json.loads(line)["hash"], 16))
            except (ValueError, KeyError, TypeError):  # a line cut short by a full disk, or edited by hand
                continue
    return recent


def _clock(source) -> Callable:
    """Frame -> seconds for the rate limit: wall clock for live sources, the video's own time for files, None
    (every frame) for image folders."""
    if getattr(source, "live", False):
        return lambda frame: frame.timestamp
    fps = getattr(source, "native_fps", lambda: 0.0)() or 0.0
    return (lambda frame: frame.index / fps) if fps > 0 else (lambda frame: None)


def _stop_reason(s: CaptureSummary, opt: CaptureOptions, started: float, stop: threading.Event) -> str | None:
    if stop.is_set():
        return "signal"
    if opt.target and s.total >= opt.target:
        return "target reached"
    if opt.max_images is not None and s.kept >= opt.max_images:
        return "--max"
    if opt.seconds is not None and time.monotonic() - started >= opt.seconds:
        return "--seconds"
    return None


def capture(source, out_dir: str | Path, options: CaptureOptions, *, progress: Callable[[CaptureSummary], None] | None = None,
            stop: threading.Event | None = None) -> CaptureSummary:
    """Read frames from an open ``source`` and keep the good, new ones in ``out_dir/<label>/``.

    Stops at the end of the source, at the target, ``max_images``, ``seconds``, ``stop``, Ctrl-C, a full disk
    (``stopped_by="disk full"``) or a source that is lost (``"source lost"``); in every case what was written
    is kept and the summary says how far it got. ``progress`` is called with the summary after every frame looked at.
    """
    label = check_label(options.label)
    folder = Path(out_dir) / label
    folder.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    s = CaptureSummary(label, str(folder), count_images(folder), options.target)
    out = _ClassFolder(folder, label, options, where=options.source or str(getattr(source, "target", "")))
    recent = _recent_hashes(out.index, options.dedupe_window) if options.dedupe_bits >= 0 else deque()
    started = time.monotonic()
    try:
        _capture_frames(source, options, s, out, recent, started=started, stop=stop, progress=progress)
    except StorageFull as exc:
        s.stopped_by, s.message = "disk full", str(exc)
    except KeyboardInterrupt:
        s.stopped_by = "Ctrl-C"
    s.seconds = round(time.monotonic() - started, 3)
    return s


def _capture_frames(source, options: CaptureOptions, s: CaptureSummary, out: _ClassFolder, recent: deque, *,
                    started: float, stop: threading.Event, progress: Callable[[CaptureSummary], None] | None) -> None:
    """Read, rate-limit, examine and keep frames until a reason to stop, which goes into ``s.stopped_by``."""
    clock = _clock(source)
    interval = 1.0 / options.fps if options.fps > 0 else 0.0
    last_kept: float | None = None
    while True:
        reason = _stop_reason(s, options, started, stop)
        if reason:
            s.stopped_by = reason
            return
        try:
            frame = source.read(timeout=0.25)
        except SourceError as exc:
            s.stopped_by, s.message = "source lost", str(exc)
            return
        if frame is None:
            if source.ended:
                return
            continue
        t = clock(frame)
        if interval and t is not None and last_kept is not None and t - last_kept < interval:
            s.rate_skipped += 1
            continue
        if _examine_and_keep(frame, options, s, out, recent):
            last_kept = t
        if progress:
            progress(s)


def _examine_and_keep(frame, options: CaptureOptions, s: CaptureSummary, out: _ClassFolder, recent: deque) -> bool:
    """Measure a frame (its ROI) and keep it if it is good and not a near-duplicate; counted in ``s`` either way.
    Returns whether it was kept."""
    s.examined += 1
    image, roi = frame.image, None
    if options.roi is not None:
        x, y, w, h = roi = options.roi.pixels(*image.shape[:2])
        image = image[y:y + h, x:x + w]
    q = measure(image)
    why = rejection(q, options.limits)
    if why is None and any(hamming(q.hash, h) <= options.dedupe_bits for h in recent):
        why = "duplicate"
    if why is not None:
        s.rejected[why] += 1
        return False
    path = out.keep(frame, image, roi, q)
    recent.append(q.hash)
    s.kept += 1
    s.files.append(str(path))
    return True


class _ClassFolder:
    """Where a run's kept images go: a free-space check, a new file name for each, and its line in the index."""

    def __init__(self, folder: Path, label: str, options: CaptureOptions, *, where: str):
        self.folder, self.label, self.options, self.where = folder, label, options, where
        self.index = folder / INDEX_NAME
        self.ext = IMAGE_FORMATS[options.image_format][0]
        self.host, self._counter = host_name(), 0

    def keep(self, frame, image, roi, q) -> Path:
        """Write ``image`` and its index line; raises ``StorageFull`` with nothing left half-done."""
        if free_bytes(self.folder) < self.options.min_free_mb * 1e6:
            raise StorageFull(f"less than {self.options.min_free_mb:g} MB free on the disk holding {self.folder}",
                              hint="free some space, or lower --min-free-mb; everything written before is kept")
        path = self._write_new(encode_image(image, self.options.image_format))
        meta = {"file": path.name, "label": self.label,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(frame.timestamp)),
                "timestamp": round(frame.timestamp, 3), "frame": frame.index, "source": self.where, "host": self.host,
                "roi": list(roi) if roi else None, "frame_size": [frame.image.shape[1], frame.image.shape[0]],
                **q.to_dict()}
        try:
            append_line(self.index, json.dumps(meta, separators=(",", ":")))
        except StorageFull:
            path.unlink(missing_ok=True)  # an image without its metadata line is not kept half-done
            raise
        return path

    def _write_new(self, data: bytes) -> Path:
        """A unique name: never replace a file, even one another process just wrote."""
        while True:
            self._counter += 1
            path = self.folder / f"{frame_stem(time.time(), self.host, self._counter)}{self.ext}"
            try:
                write_new(path, data)
                return path
            except FileExistsError:
                continue

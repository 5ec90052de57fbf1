"""Doubt sampling in the recognition loop (``edgerec run --collect DIR``): keep the frames a person should look at.

A frame is kept when the model's top score is under ``below``, when its top two scores are within ``margin``,
when the (smoothed) label differs from the previous frame's, or by a small random share (so the collection
also holds frames the model was sure of, for an unbiased error estimate). Each kept frame is written as the
camera delivered it (``<stem>.jpg``), plus the region the model classified when an ROI is used
(``<stem>.roi.jpg``), plus ``<stem>.json``: the prediction (label, score, top-k), why it was kept, when, where.
A person then only confirms or corrects (``edgerec data review``).

Caps, so a board left running for months never fills its disk:

- rate: at most ``max_per_minute`` frames in any 60 s;
- size: at most ``max_mb`` for the folder; to make room, frames already pulled (named in ``DIR/.pulled``, one
  stem or file name a line, which ``edgerec data pull`` appends to) go first, then the oldest;
- free space: nothing is written while the disk has less than ``min_free_mb`` free; a write that meets a full
  disk anyway (ENOSPC) stops collecting for the rest of the run, and the recognition loop goes on.

Every frame not kept for a cap, and every frame dropped to make room, is counted in ``stats``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..runtime.sinks import Sink
from .store import IMAGE_FORMATS, StorageFull, encode_image, frame_stem, free_bytes, host_name, write_new

__all__ = ["DoubtPolicy", "CollectSink", "REASONS", "doubt_reasons", "PULLED_NAME", "CollectStats"]

log = logging.getLogger("edgerec.capture")

PULLED_NAME = ".pulled"
_MB = 1_000_000


@dataclass(frozen=True)
class DoubtPolicy:
    below: float = 0.6  # top score under this: doubtful (0: off)
    margin: float = 0.15  # top-1 minus top-2 under this: doubtful (0: off)
    flips: bool = True  # the label changed since the previous frame
    random_share: float = 0.01  # and this share of all frames, whatever the model said
    max_per_minute: float = 30.0
    max_mb: float = 500.0  # the folder's size cap
    min_free_mb: float = 200.0  # never write when the disk has less than this free
    image_format: str = "jpg"
    seed: int | None = None  # of the random share (None: a fresh one per run)

    def __post_init__(self):
        checks = {"below": (0.0, 1.0), "margin": (0.0, 1.0), "random_share": (0.0, 1.0),
                  "max_per_minute": (0.0, float("inf")), "max_mb": (0.0, float("inf")), "min_free_mb": (0.0, float("inf"))}
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ConfigError(f"collect {name.replace('_', '-')} must be between {lo:g} and {hi:g}, got {v}")
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"unknown image format '{self.image_format}'", hint=f"use one of {', '.join(IMAGE_FORMATS)}")


def _margin(record: dict) -> float | None:
    top = record.get("top_k") or []
    return float(top[0][1]) - float(top[1][1]) if len(top) >= 2 else None


# reason -> does it hold for this frame's record (given the previous frame's label)? Checked in this order.
REASONS: dict[str, Callable[[dict, "str | None", DoubtPolicy], bool]] = {
    "low score": lambda rec, prev, p: float(rec.get("score", 0.0)) < p.below,
    "small margin": lambda rec, prev, p: (m := _margin(rec)) is not None and m < p.margin,
    "label flip": lambda rec, prev, p: p.flips and prev is not None and rec.get("label") != prev,
}


def doubt_reasons(record: dict, previous_label: str | None, policy: DoubtPolicy) -> list[str]:
    """Why the model's answer in ``record`` (as ``run_loop`` builds it) deserves a person's look; [] when it does not."""
    return [name for name, holds in REASONS.items() if holds(record, previous_label, policy)]


@dataclass
class CollectStats:
    frames: int = 0  # frames seen
    wanted: int = 0  # frames with a reason to keep
    saved: int = 0
    reasons: Counter = field(default_factory=Counter)  # of the saved frames
    skipped_rate: int = 0  # wanted, but over max_per_minute
    skipped_disk: int = 0  # wanted, but the folder cap or the free-space floor left no room
    evicted_pulled: int = 0  # dropped to make room: already pulled
    evicted_oldest: int = 0  # dropped to make room: not yet pulled (the oldest)
    stopped: str = ""  # why collecting stopped early (a full disk), else empty

    def to_dict(self) -> dict:
        return {**self.__dict__, "reasons": dict(self.reasons)}

    def line(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in self.reasons.items()) or "-"
        text = (f"saved {self.saved} of {self.frames} frames ({why}); not saved: rate cap {self.skipped_rate}, "
                f"disk {self.skipped_disk}; dropped to make room: pulled {self.evicted_pulled}, oldest {self.evicted_oldest}")
        return text + (f"; stopped: {self.stopped}" if self.stopped else "")


class CollectSink(Sink):
    """A sink that keeps the doubtful frames in ``folder``. Opened on the first frame (the folder is created then).

    >>> sink = CollectSink("field/", DoubtPolicy(below=0.5), meta={"model": "fruit", "source": "csi://0"})  # doctest: +SKIP
    >>> run_loop(pipe, src, [sink]); print(sink.stats.line())
    """

    wants_frames = True

    def __init__(self, folder: str | Path, policy: DoubtPolicy | None = None, *, meta: dict | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.folder = Path(folder)
        self.policy = policy or DoubtPolicy()
        self.meta = dict(meta or {})
        self.stats = CollectStats()
        self._clock = clock
        self._rng = random.Random(self.policy.seed)
        self._prev: str | None = None
        self._times: deque = deque()
        self._groups: dict[str, int] | None = None  # stem -> bytes, oldest first (stems start with the UTC time)
        self._bytes = 0
        self._pulled: tuple[float, set] = (-1.0, set())
        self._host, self._counter = host_name(), 0
        self._ext = IMAGE_FORMATS[self.policy.image_format][0]

    # the loop calls this for every frame: cheap unless the frame is kept
    def write(self, image: np.ndarray | None, record: dict) -> None:
        p = self.policy
        self.stats.frames += 1
        prev, self._prev = self._prev, record.get("label")
        reasons = doubt_reasons(record, prev, p)
        if p.random_share and self._rng.random() < p.random_share:
            reasons.append("random")
        if not reasons or image is None or self.stats.stopped:
            return
        self.stats.wanted += 1
        now = self._clock()
        while self._times and now - self._times[0] >= 60.0:
            self._times.popleft()
        if len(self._times) >= p.max_per_minute:
            self.stats.skipped_rate += 1
            return
        try:
            if self._save(image, record, reasons, prev):
                self._times.append(now)
                self.stats.saved += 1
                self.stats.reasons.update(reasons)
        except StorageFull as exc:
            self.stats.stopped = f"disk full: {exc.message}"
            log.warning("collect: %s; no more frames are saved this run (the ones saved are kept)", exc.message)

    # folder bookkeeping -----------------------------------------------------------------------------
    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        groups: dict[str, int] = {}
        for f in self.folder.iterdir():
            if f.is_file() and not f.name.startswith("."):
                stem = f.name.split(".", 1)[0]
                groups[stem] = groups.get(stem, 0) + f.stat().st_size
        self._groups = dict(sorted(groups.items()))
        self._bytes = sum(groups.values())

    def _pulled_stems(self) -> set:
        path = self.folder / PULLED_NAME
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return set()
        if mtime != self._pulled[0]:  # read again only when data pull has added to it
            names = path.read_text(errors="replace").split()
            self._pulled = (mtime, {n.split(".", 1)[0] for n in names})
        return self._pulled[1]

    def _evict_one(self) -> bool:
        """Delete one frame group to make room: an already pulled one first, else the oldest. False: none left."""
        if not self._groups:
            return False
        pulled = self._pulled_stems()
        stem = next((s for s in self._groups if s in pulled), None)
        if stem is not None:
            self.stats.evicted_pulled += 1
        else:
            stem = next(iter(self._groups))
            self.stats.evicted_oldest += 1
        for f in self.folder.glob(f"{stem}.*"):
            f.unlink(missing_ok=True)
        self._bytes -= self._groups.pop(stem)
        return True

    def _save(self, image: np.ndarray, record: dict, reasons: list[str], previous: str | None) -> bool:
        if self._groups is None:
            self._open()
        fmt = self.policy.image_format
        roi = record.get("roi") or next((st["roi"] for st in reversed(record.get("stages", [])) if st.get("roi")), None)
        files = {self._ext: encode_image(image, fmt)}
        if roi:
            x, y, w, h = roi
            files[".roi" + self._ext] = encode_image(image[y:y + h, x:x + w], fmt)
        size = sum(map(len, files.values())) + 1024  # + the sidecar
        cap = self.policy.max_mb * _MB
        if size > cap:
            self.stats.skipped_disk += 1
            return False
        while self._bytes + size > cap and self._evict_one():
            pass
        if free_bytes(self.folder) - size < self.policy.min_free_mb * _MB:
            self.stats.skipped_disk += 1
            return False
        while True:  # a unique stem: never replace a frame, even one another process wrote
            self._counter += 1
            stem = frame_stem(time.time(), self._host, self._counter)
            if not any(self.folder.glob(f"{stem}.*")):
                break
        written: list[Path] = []
        try:
            for suffix, data in files.items():
                write_new(self.folder / f"{stem}{suffix}", data)
                written.append(self.folder / f"{stem}{suffix}")
            ts = float(record.get("timestamp", time.time()))
            side = {"file": f"{stem}{self._ext}", "roi_file": f"{stem}.roi{self._ext}" if roi else None,
                    "predicted": record.get("label"), "score": record.get("score"), "top_k": record.get("top_k", []),
                    "margin": None if (m := _margin(record)) is None else round(m, 5), "reasons": reasons,
                    "previous_label": previous, "roi": list(roi) if roi else None,
                    "frame_size": [int(image.shape[1]), int(image.shape[0])],
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)), "timestamp": ts,
                    "frame": record.get("frame"), "host": self._host, **self.meta}
            if len(record.get("stages") or []) > 1:
                side["stages"] = [{k: st.get(k) for k in ("name", "ran", "label", "score", "top_k")} for st in record["stages"]]
            data = json.dumps(side, indent=1).encode()
            write_new(self.folder / f"{stem}.json", data)
            written.append(self.folder / f"{stem}.json")
        except BaseException:
            for f in written:  # no half-written frame group: all of it or none
                f.unlink(missing_ok=True)
            raise
        self._groups[stem] = sum(f.stat().st_size for f in written)
        self._bytes += self._groups[stem]
        return True

    def close(self) -> None:
        pass

"""What every source shares: the ``Frame`` record, counters, and the reader thread.

Decoding runs on its own thread so it overlaps inference. Live sources (cameras, streams) keep only
the newest frame: the loop always gets the latest picture, older unread ones are dropped and counted.
Files are passed through a small bounded queue: in order, none dropped. Live sources reconnect with
exponential backoff when reading fails; every attempt is logged.

With ``cancel`` (an event a signal handler sets), the first open runs on a helper thread and the caller
waits for it in short steps, so SIGTERM/Ctrl-C end a run even while a stream is still opening (FFmpeg
waits up to its 10 s open timeout inside one C call, where Python cannot run a signal handler). The
abandoned open still runs until that call returns (``Source.opening``); a process that exits meanwhile
must leave with ``os._exit``, as ``edgerec run`` does: a normal interpreter exit tears down the libraries
under that thread and aborts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from ...errors import SourceError

__all__ = ["Frame", "Source", "CORRUPT", "SourceStats"]

log = logging.getLogger("edgerec.runtime.sources")

CORRUPT = object()  # read() returns this for a frame that arrived but cannot be decoded
_END = object()


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 BGR (gray/BGRA as the device gives them; the Classifier converts)
    index: int  # position in the source (gaps = dropped frames)
    timestamp: float  # time.time() when it was captured
    name: str = ""  # file name for image folders, else empty


@dataclass
class SourceStats:
    captured: int = 0
    delivered: int = 0
    dropped: int = 0  # live: overwritten before the loop took them
    corrupt: int = 0  # arrived but could not be decoded; skipped
    reconnects: int = 0
    capture_ns: int = 0  # total time spent in read() on the reader thread

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Source:
    """Base class. Subclasses implement ``_open``, ``_read`` (ndarray, ``CORRUPT`` or ``None`` at the end /
    on failure) and ``_release``; set ``live``. Use as a context manager and iterate (images) or call
    ``read()`` (``Frame`` records)."""

    live = False
    kind = ""

    def __init__(self, target: str, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, loop: bool = False, retries: int | None = None,
                 backoff: tuple[float, float] = (0.5, 8.0), queue_size: int = 4,
                 cancel: threading.Event | None = None):
        self.target, self.width, self.height, self.fps, self.loop = target, width, height, fps, loop
        self.retries, self.backoff = retries, backoff
        self._cancel = cancel
        self._cancelled = False  # cancel was set during the first open: the source gives nothing
        self._opener: threading.Thread | None = None
        self._open_lock = threading.Lock()  # the abandoned first open and close() hand the device over under it
        self._open_busy = False  # an abandoned first open is still running: it releases what it opens
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._latest_taken = True
        self._ended = False
        self._name = ""

    # subclass interface -------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self):
        raise NotImplementedError

    def _release(self) -> None:
        pass

    def _rewind(self) -> bool:
        """Files with ``loop``: start again; return False when that is not possible."""
        self._release()
        self._open()
        return True

    # lifecycle ----------------------------------------------------------------------------------
    def start(self) -> "Source":
        if self._thread is None and not self._cancelled:
            # the first open fails loudly, in the caller's thread (or is given up when cancel is set)
            if self._cancel is None:
                self._open()
            elif not self._open_cancellable():
                return self
            self._thread = threading.Thread(target=self._run, name=f"edgerec-source-{self.kind}", daemon=True)
            self._thread.start()
        return self

    def _open_cancellable(self) -> bool:
        """``_open`` on a helper thread, waited for in 50 ms steps; False (source ended) when ``cancel`` is set first."""
        state: dict = {}

        def opener() -> None:
            try:
                self._open()
            except BaseException as exc:  # handed to the caller below
                state["error"] = exc
            with self._open_lock:
                state["done"] = True
                if self._open_busy:  # abandoned: nobody waits any more, give back what was opened
                    self._release()
                    self._open_busy = False

        helper = self._opener = threading.Thread(target=opener, name=f"edgerec-open-{self.kind}", daemon=True)
        helper.start()
        while True:
            with self._open_lock:
                if state.get("done"):
                    break
                if self._cancel.is_set():
                    self._open_busy = True
                    self._cancelled = self._ended = True
                    break
            helper.join(0.05)  # wakes for signals: their handler runs here, in the main thread
        if self._cancelled:
            log.warning("%s %s: stopped while opening", self.kind, self.target)
            return False
        if "error" in state:
            raise state["error"]
        return True

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            while True:  # unblock a reader waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s reader thread did not stop within %.0f s", self.kind, timeout)
            self._thread = None
        with self._open_lock:
            if not self._open_busy:  # else the abandoned open releases it when its call returns
                self._release()

    @property
    def ended(self) -> bool:
        """True once the source has nothing more to give (end of file, or a live source that gave up)."""
        return self._ended

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def opening(self) -> bool:
        """True while a first open that ``cancel`` abandoned is still inside the device or stream library."""
        return self._open_busy or (self._cancelled and self._opener is not None and self._opener.is_alive())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        while (f := self.read()) is not None:
            yield f.image

    def frames(self):
        while (f := self.read()) is not None:
            yield f

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r})"

    # consumer side ------------------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (files) or the newest one (live); ``None`` at the end or after ``close``.

        Raises the reader thread's ``SourceError`` (for example: reconnect attempts used up).
        """
        if self._thread is None:
            self.start()
        if self._cancelled:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.live:
            with self._cond:
                while self._latest_taken and not self._ended and not self._stop.is_set():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return None
                    self._cond.wait(0.1 if left is None else min(left, 0.1))
                if not self._latest_taken:
                    self._latest_taken = True
                    self.stats.delivered += 1
                    return self._latest
        else:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if deadline is not None and time.monotonic() > deadline:
                        return None
                    continue
                if item is _END:
                    self._ended = True
                    break
                self.stats.delivered += 1
                return item
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        return None

    # producer side ------------------------------------------------------------------------------
    def _publish(self, frame: Frame) -> None:
        if self.live:
            with self._cond:
                if not self._latest_taken:
                    self.stats.dropped += 1
                self._latest, self._latest_taken = frame, False
                self._cond.notify()
        else:
            while not self._stop.is_set():
                try:
                    self._queue.put(frame, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _finish(self) -> None:
        if self.live:
            with self._cond:
                self._ended = True
                self._cond.notify_all()
        else:
            while not self._stop.is_set():
                try:
                    self._queue.put(_END, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _reconnect(self) -> bool:
        delay, attempt = self.backoff[0], 0
        while not self._stop.is_set():
            attempt += 1
            if self.retries is not None and attempt > self.retries:
                self._error = SourceError(
                    f"{self.kind} source {self.target} stopped delivering frames; gave up after {self.retries} reconnect attempts",
                    hint="check the camera/stream, or allow more attempts (--retries)",
                )
                return False
            log.warning("%s %s: no frame; reconnecting in %.1f s (attempt %d)", self.kind, self.target, delay, attempt)
            if self._stop.wait(delay):
                return False
            self._release()
            try:
                self._open()
            except SourceError as exc:
                log.warning("%s %s: reconnect failed: %s", self.kind, self.target, exc.message)
                delay = min(delay * 2, self.backoff[1])
                continue
            self.stats.reconnects += 1
            log.warning("%s %s: reconnected", self.kind, self.target)
            return True
        return False

    def _run(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter_ns()
                img = self._read()
                self.stats.capture_ns += time.perf_counter_ns() - t0
                if img is None:
                    if self._stop.is_set():
                        break
                    if self.live:
                        if self._reconnect():
                            continue
                        break
                    if self.loop and self.stats.captured > 0 and self._rewind():
                        continue
                    break
                if img is CORRUPT or not isinstance(img, np.ndarray) or img.size == 0 or img.ndim not in (2, 3):
                    self.stats.corrupt += 1
                    continue
                self.stats.captured += 1
                self._publish(Frame(img, index, time.time(), self._name))
                index += 1
        except SourceError as exc:
            self._error = exc
        except Exception as exc:  # the loop must learn why its source died, not just that it did
            self._error = SourceError(f"{self.kind} source {self.target} failed: {type(exc).__name__}: {exc}")
        finally:
            self._finish()

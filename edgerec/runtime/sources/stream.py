"""Network streams through OpenCV's FFmpeg: ``rtsp://``, ``http(s)://`` (MJPEG, HLS, ...). Live: newest
frame only, reconnect with backoff."""

from __future__ import annotations

import cv2

from ...errors import SourceError
from ._capture import CaptureSource

__all__ = ["StreamSource"]


class StreamSource(CaptureSource):
    kind = "stream"
    live = True
    api = cv2.CAP_FFMPEG
    read_timeout_ms = 5000

    def _params(self):
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.read_timeout_ms]

    def _not_opened(self) -> SourceError:
        return SourceError(f"cannot open stream {self.target}",
                           hint="check the URL in a player (ffplay URL) and that this OpenCV build has FFMPEG")

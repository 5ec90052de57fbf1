"""OpenCV ``VideoCapture`` as a source: shared by cameras, streams, video files and GStreamer."""

from __future__ import annotations

import cv2

from ...errors import SourceError
from ._base import Source

__all__ = ["CaptureSource", "has_gstreamer"]


def has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    return any("GStreamer:" in line and "YES" in line for line in info.splitlines())


class CaptureSource(Source):
    api = cv2.CAP_ANY
    open_timeout_ms = 10000

    def _location(self):
        return self.target

    def _params(self) -> list[int]:
        return []

    def _not_opened(self) -> SourceError:
        return SourceError(f"cannot open {self.kind} source {self.target}")

    def _open(self) -> None:
        self._cap = cv2.VideoCapture(self._location(), self.api, self._params())
        if not self._cap.isOpened():
            self._cap.release()
            self._cap = None
            raise self._not_opened()
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps)):
            if value and self.live:
                self._cap.set(prop, value)

    def _read(self):
        cap = getattr(self, "_cap", None)
        if cap is None:
            return None
        ok, img = cap.read()
        return img if ok else None

    def _release(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
        self._cap = None

    def native_fps(self) -> float:
        cap = getattr(self, "_cap", None)
        return float(cap.get(cv2.CAP_PROP_FPS)) if cap is not None else 0.0

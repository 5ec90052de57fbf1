"""``gst://<pipeline>``: any GStreamer pipeline ending in ``appsink`` (needs OpenCV built with GStreamer)."""

from __future__ import annotations

import cv2

from ...errors import SourceError
from ._capture import CaptureSource, has_gstreamer

__all__ = ["GStreamerSource"]


class GStreamerSource(CaptureSource):
    kind = "gst"
    live = True
    api = cv2.CAP_GSTREAMER

    def _location(self):
        pipe = self.target
        return pipe if "appsink" in pipe else pipe + " ! videoconvert ! video/x-raw, format=BGR ! appsink drop=1 max-buffers=1"

    def _open(self) -> None:
        if not has_gstreamer():
            raise SourceError(
                f"{self.kind} source needs OpenCV built with GStreamer, and this one is not",
                hint="on Jetson use the system OpenCV: python3 -m venv --system-site-packages, and "
                     "pip uninstall opencv-python-headless inside it",
            )
        super()._open()

    def _not_opened(self) -> SourceError:
        return SourceError(f"GStreamer could not start the pipeline: {self._location()}",
                           hint="test it with gst-launch-1.0, replacing appsink with fakesink")

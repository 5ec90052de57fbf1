"""A V4L2 camera (USB webcam, Pi camera through libcamera's V4L2 compatibility): ``0``, ``/dev/video0``,
``v4l2:///dev/video0``."""

from __future__ import annotations

import glob
import re
import sys

import cv2

from ...errors import SourceError
from ._capture import CaptureSource

__all__ = ["V4L2Source", "video_devices"]


def video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: int(re.sub(r"\D", "", p) or 0))


class V4L2Source(CaptureSource):
    kind = "v4l2"
    live = True

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        self.api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY

    def _location(self):
        m = re.fullmatch(r"(?:/dev/video)?(\d+)", self.target)
        return int(m.group(1)) if m else self.target

    def _open(self) -> None:
        if sys.platform.startswith("linux") and not video_devices():
            raise SourceError(f"no camera at {self.target}: this machine has no /dev/video* devices",
                              hint="plug a camera in (check `ls /dev/video*`), or use a file, folder or stream as --source")
        super()._open()
        # the reader thread always holds the newest frame; a deep driver queue would only add latency
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.width or self.height:
            # cameras choose the nearest mode they have; say so instead of pretending
            got = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            self.actual_size = got

    def _not_opened(self) -> SourceError:
        present = ", ".join(video_devices()) or "none"
        return SourceError(f"no camera at {self.target}", hint=f"video devices present: {present}")

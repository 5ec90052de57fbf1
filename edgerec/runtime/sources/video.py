"""A video file: decoded in order on its own thread, none dropped; ``loop=True`` starts again at the end."""

from __future__ import annotations

from pathlib import Path

import cv2

from ...errors import SourceError
from ._capture import CaptureSource

__all__ = ["VideoFileSource"]


class VideoFileSource(CaptureSource):
    kind = "video"
    live = False
    api = cv2.CAP_ANY

    def _open(self) -> None:
        if not Path(self.target).is_file():
            raise SourceError(f"video file {self.target} does not exist")
        super()._open()

    def _not_opened(self) -> SourceError:
        return SourceError(f"OpenCV cannot decode {self.target} as a video",
                           hint="check the file, or convert it: ffmpeg -i IN -c:v libx264 OUT.mp4")

    def _rewind(self) -> bool:
        if self._cap is not None and self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return True
        return super()._rewind()

"""An annotated video file (``.mp4`` mp4v, ``.avi`` MJPG, ``.mkv`` XVID), opened on the first frame."""

from __future__ import annotations

from pathlib import Path

import cv2

from ...errors import ConfigError
from ._base import Sink, annotate

__all__ = ["VideoSink"]

_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".mov": "mp4v"}


class VideoSink(Sink):
    wants_frames = True

    def __init__(self, path: str, *, fps: float = 15.0):
        self.path, self.fps = Path(path), fps or 15.0
        if self.path.suffix.lower() not in _FOURCC:
            raise ConfigError(f"cannot write video '{path}': unknown container", hint=f"use one of {', '.join(_FOURCC)}")
        if not self.path.parent.exists():
            raise ConfigError(f"cannot write video '{path}': folder {self.path.parent} does not exist")
        self._vw = None
        self._size = None
        self.frames = 0

    def write(self, image, record):
        if image is None:
            return
        if self._vw is None:
            h, w = image.shape[:2]
            self._size = (w, h)
            self._vw = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()]), self.fps, self._size)
            if not self._vw.isOpened():
                raise ConfigError(f"OpenCV cannot write {self.path}", hint="try an .avi file (MJPG needs no extra codec)")
        frame = annotate(image, record)
        if (frame.shape[1], frame.shape[0]) != self._size:  # sources may change size (image folders)
            frame = cv2.resize(frame, self._size)
        if frame.ndim == 2 or frame.shape[2] != 3:
            from ..preprocess import to_bgr

            frame = to_bgr(frame)
        self._vw.write(frame)
        self.frames += 1

    def close(self):
        if self._vw is not None:
            self._vw.release()
            self._vw = None

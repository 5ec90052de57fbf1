"""An on-screen window (``cv2.imshow``); needs a display and an OpenCV with GUI support. ``q``/Esc stops."""

from __future__ import annotations

import os
import sys

import cv2

from ...errors import ConfigError
from ._base import Sink, annotate

__all__ = ["WindowSink", "display_available"]


def display_available() -> bool:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    return bool(gui) and "NONE" not in gui[0].upper()


class WindowSink(Sink):
    wants_frames = True

    def __init__(self, title: str = "edgerec"):
        if not display_available():
            raise ConfigError(
                "no display for --show (no $DISPLAY, or this OpenCV is the headless build)",
                hint="use --http PORT to watch in a browser, or --save-video out.mp4",
            )
        self.title = title
        self.quit = False

    def write(self, image, record):
        if image is None:
            return
        cv2.imshow(self.title, annotate(image, record))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit = True

    def close(self):
        cv2.destroyWindow(self.title)

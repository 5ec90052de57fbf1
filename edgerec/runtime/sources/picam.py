"""``picam://N``: a Raspberry Pi camera through picamera2 (libcamera).

picamera2's ``"RGB888"`` format is named after libcamera's (little-endian) DRM naming: the bytes in
memory are B, G, R, which is exactly OpenCV's BGR, so frames pass through untouched. ``"XBGR8888"``
would arrive as 4 channels; we ask for RGB888 and never need a swap.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import SourceError
from ._base import Source

__all__ = ["PicameraSource"]


class PicameraSource(Source):
    kind = "picam"
    live = True

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2  # Raspberry Pi OS only: apt install python3-picamera2
        except ImportError as exc:
            msg, fix = missing_picamera2(exc)
            raise SourceError(msg, hint=fix) from exc
        try:
            self._cam = Picamera2(int(self.target or 0))
            size = (int(self.width or 640), int(self.height or 480))
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            cfg = self._cam.create_video_configuration(main={"size": size, "format": "RGB888"}, controls=controls)
            self._cam.configure(cfg)
            self._cam.start()
        except (RuntimeError, IndexError) as exc:
            raise SourceError(f"cannot open Pi camera {self.target}: {exc}", hint="check `rpicam-hello --list-cameras`") from exc

    def _read(self):
        cam = getattr(self, "_cam", None)
        if cam is None:
            return None
        try:
            return cam.capture_array("main")  # RGB888 = BGR byte order: already what OpenCV expects
        except RuntimeError:
            return None

    def _release(self) -> None:
        cam = getattr(self, "_cam", None)
        if cam is not None:
            cam.stop()
            cam.close()
        self._cam = None


# where Raspberry Pi OS's apt puts python3-picamera2 and python3-libcamera
SYSTEM_SITE = Path("/usr/lib/python3/dist-packages")


def missing_picamera2(exc: ImportError, system_site: Path = SYSTEM_SITE) -> tuple[str, str]:
    """(message, fix) for a failed ``import picamera2``: which piece is missing and how to add it."""
    import sys

    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name == "libcamera":
        return ("picam:// needs libcamera's Python bindings, which picamera2 imports and which are missing",
                "sudo apt install python3-libcamera (Raspberry Pi OS)")
    if (system_site / "picamera2").is_dir() and str(system_site) not in sys.path:
        return (f"picamera2 is installed for the system Python ({system_site}) but this environment ({sys.prefix}) "
                "cannot see it", "recreate the venv with --system-site-packages (edgerec device setup does on a "
                "Raspberry Pi profile), or run with the system python3")
    return ("picam:// needs picamera2, which is not installed",
            "sudo apt install python3-picamera2 (from Raspberry Pi OS's own apt repository; pip cannot install it), "
            "in a venv created with --system-site-packages")

"""``csi://N``: a Jetson CSI camera through ``nvarguscamerasrc`` (OpenCV with GStreamer required)."""

from __future__ import annotations

from .gst import GStreamerSource

__all__ = ["CSISource", "csi_pipeline"]


def csi_pipeline(sensor: int = 0, width: int | None = None, height: int | None = None, fps: float | None = None) -> str:
    w, h, f = width or 1280, height or 720, int(fps or 30)
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={w}, height={h}, "
            f"framerate={f}/1, format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! "
            f"video/x-raw, format=BGR ! appsink drop=1 max-buffers=1")


class CSISource(GStreamerSource):
    kind = "csi"

    def _location(self):
        return csi_pipeline(int(self.target or 0), self.width, self.height, self.fps)

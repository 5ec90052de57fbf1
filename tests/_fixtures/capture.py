"""Frames and clips for the capture and doubt-sampling tests: textured scenes (sharp, each its own hash),
blurred, dark and overexposed versions, and colour mixes the colour classifier is unsure of."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["textured", "blurred", "dark", "overexposed", "mixed_colour", "write_clip", "FakeSource"]


def textured(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    """A blocky random scene: sharp edges everywhere, a different 64-bit hash for every seed."""
    import cv2

    small = np.random.default_rng(seed).integers(0, 256, (12, 16, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def blurred(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), 8)


def dark(img: np.ndarray) -> np.ndarray:
    return (img * 0.08).astype(np.uint8)


def overexposed(img: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.int16) + 200, 0, 255).astype(np.uint8)


def mixed_colour(a: str, b: str, share_b: float, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A frame whose left part is colour ``a`` and right part ``b`` (``share_b`` of the width), with a little noise:
    at ``share_b`` near 0.5 the colour classifier's top two scores are close."""
    bgr = {"red": (30, 40, 220), "green": (40, 210, 30), "blue": (220, 40, 30)}
    img = np.empty((h, w, 3), np.int16)
    cut = round(w * (1 - share_b))
    img[:, :cut] = bgr[a]
    img[:, cut:] = bgr[b]
    img += np.random.default_rng(seed).integers(-10, 10, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 20.0) -> Path:
    """An MJPG .avi of ``frames`` (all the same size)."""
    import cv2

    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()
    return path


class FakeSource:
    """A live source that gives ``frames`` and then fails as an unplugged camera does (``SourceError``)."""

    live = True

    def __init__(self, frames: list[np.ndarray], error: Exception | None = None):
        self.frames, self.error, self.i, self.ended = list(frames), error, 0, False

    def read(self, timeout=None):
        import time

        from edgerec.runtime.sources import Frame

        if self.i < len(self.frames):
            self.i += 1
            return Frame(self.frames[self.i - 1], self.i - 1, time.time() + self.i)  # 1 s apart: no rate limit in the way
        if self.error is not None:
            raise self.error
        self.ended = True
        return None

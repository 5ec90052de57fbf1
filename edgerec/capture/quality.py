"""Is a frame worth keeping? A 64-bit difference hash (near-duplicates), the variance of the Laplacian
(blur) and brightness statistics (dark or overexposed frames), all on a small grayscale copy.

The checks run on a copy at most ``_WORK_SIDE`` pixels wide, so their cost does not grow with the camera's
resolution and the thresholds mean the same on a 640x480 and a 1920x1080 camera.

>>> q = measure(image)                                   # doctest: +SKIP
>>> rejection(q, QualityLimits())                         # None, or "blurry", "dark", "overexposed"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

__all__ = ["Quality", "QualityLimits", "measure", "dhash", "hamming", "rejection", "REJECTIONS"]

_WORK_SIDE = 320  # longest side of the grayscale copy the checks run on


@dataclass(frozen=True)
class Quality:
    hash: int  # 64-bit dHash
    sharpness: float  # variance of the Laplacian of the grayscale copy
    brightness: float  # mean gray level, 0..255
    p5: float  # 5th / 95th percentile gray level
    p95: float
    clipped: float  # share of pixels at 250 or above

    def to_dict(self) -> dict:
        return {"hash": f"{self.hash:016x}", "sharpness": round(self.sharpness, 1), "brightness": round(self.brightness, 1),
                "p5": round(self.p5, 1), "p95": round(self.p95, 1), "clipped": round(self.clipped, 4)}


@dataclass(frozen=True)
class QualityLimits:
    """Frames outside these are not kept. Defaults suit indoor USB and CSI cameras; 0 / 255 / 1 switch a check off."""

    min_sharpness: float = 30.0  # variance of the Laplacian; sharp scenes give hundreds, a defocused one a few
    min_brightness: float = 30.0  # mean gray level under this: dark
    min_p95: float = 60.0  # ... or 95 % of the pixels under this: dark with a few highlights (a lamp in the corner)
    max_brightness: float = 225.0  # mean gray level over this: overexposed
    max_clipped: float = 0.4  # ... or more than this share of pixels blown out (>= 250)


# reason -> test that says "reject": a table, checked in order (the first that holds names the rejection)
REJECTIONS: dict[str, Callable[[Quality, QualityLimits], bool]] = {
    "dark": lambda q, lim: q.brightness < lim.min_brightness or q.p95 < lim.min_p95,
    "overexposed": lambda q, lim: q.brightness > lim.max_brightness or q.clipped > lim.max_clipped,
    "blurry": lambda q, lim: q.sharpness < lim.min_sharpness,
}


def _gray_small(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    h, w = image.shape[:2]
    scale = _WORK_SIDE / max(h, w)
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return image


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash of a grayscale image: is each cell of a 9x8 thumbnail brighter than its right-hand neighbour."""
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return bin(a ^ b).count("1")


def measure(image: np.ndarray) -> Quality:
    """Hash, sharpness and brightness of a BGR, BGRA or grayscale frame."""
    gray = _gray_small(image)
    p5, p95 = np.percentile(gray, (5, 95))
    return Quality(hash=dhash(gray), sharpness=float(cv2.Laplacian(gray, cv2.CV_64F).var()),
                   brightness=float(gray.mean()), p5=float(p5), p95=float(p95),
                   clipped=float(np.count_nonzero(gray >= 250)) / gray.size)


def rejection(q: Quality, limits: QualityLimits) -> str | None:
    """The first reason in ``REJECTIONS`` that holds for ``q``, or None: keep it."""
    for reason, rejects in REJECTIONS.items():
        if rejects(q, limits):
            return reason
    return None

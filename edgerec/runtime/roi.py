"""A region of interest: the part of each frame that is classified. A deploy-time setting, not part of the bundle.

``x,y,w,h`` in pixels (``200,40,480,480``) or as fractions of the frame (``0.125,0,0.75,1``: every value
between 0 and 1). The region must lie inside the frame; that is checked once per frame size (on the first
frame), with an error that names the frame size and the region.

>>> roi = parse_roi("0.125,0,0.75,1")
>>> roi.pixels(480, 640)
(80, 0, 480, 480)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError

__all__ = ["Roi", "parse_roi"]

_EPS = 1e-6


@dataclass(frozen=True)
class Roi:
    x: float
    y: float
    w: float
    h: float
    fractions: bool

    def pixels(self, frame_h: int, frame_w: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` in pixels of a frame_h x frame_w frame; ``ConfigError`` when it is not inside."""
        if self.fractions:
            x0, y0 = round(self.x * frame_w), round(self.y * frame_h)
            x1, y1 = round((self.x + self.w) * frame_w), round((self.y + self.h) * frame_h)
            x, y, w, h = x0, y0, min(x1, frame_w) - x0, min(y1, frame_h) - y0
        else:
            x, y, w, h = int(self.x), int(self.y), int(self.w), int(self.h)
            if x + w > frame_w or y + h > frame_h:
                raise ConfigError(
                    f"ROI {self} lies outside the {frame_w}x{frame_h} frame (it reaches x={x + w}, y={y + h})",
                    hint=f"keep x + w <= {frame_w} and y + h <= {frame_h}, or give fractions of the frame, e.g. 0.125,0,0.75,1",
                )
        if w < 1 or h < 1:
            raise ConfigError(f"ROI {self} is empty on a {frame_w}x{frame_h} frame", hint="give a larger w and h")
        return x, y, w, h

    def __str__(self) -> str:
        vals = (self.x, self.y, self.w, self.h)
        return ",".join(f"{v:g}" for v in vals) if self.fractions else ",".join(str(int(v)) for v in vals)


def parse_roi(value: "str | Sequence[float] | Roi | None") -> Roi | None:
    """``"x,y,w,h"`` (pixels, or fractions when every value is between 0 and 1), a 4-sequence, or a ``Roi``."""
    if value is None or isinstance(value, Roi):
        return value
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise ConfigError(f"cannot read ROI '{text}'", hint="x,y,w,h in pixels (200,40,480,480) or fractions of the frame (0.125,0,0.75,1)")
    x, y, w, h = vals
    if min(vals) < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"ROI '{text}': x and y must be >= 0, w and h > 0")
    if max(vals) <= 1.0:
        if x + w > 1 + _EPS or y + h > 1 + _EPS:
            raise ConfigError(f"ROI '{text}' lies outside the frame (x + w = {x + w:g}, y + h = {y + h:g}; fractions end at 1)",
                              hint="as fractions, keep x + w <= 1 and y + h <= 1")
        return Roi(x, y, w, h, fractions=True)
    if any(v != int(v) for v in vals):
        raise ConfigError(f"ROI '{text}' mixes pixels and fractions",
                          hint="all four values in pixels (whole numbers), or all between 0 and 1 (fractions of the frame)")
    return Roi(x, y, w, h, fractions=False)

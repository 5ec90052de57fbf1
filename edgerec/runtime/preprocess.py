"""Camera frame (any size, BGR/gray/BGRA) -> the model's input tensor, into buffers allocated once.

The steps come from the bundle's contract only (``InputSpec`` + ``Artifact``): resize mode, colour
order, normalisation or quantization, layout. Per frame the work is one ``cv2.resize`` into a
preallocated image, a split into its three colour planes, and one table look-up (``cv2.LUT``) per model
channel, read from the plane of that channel's colour, that does normalisation *and* quantization in a
single pass (see ``adapters.pixel_lut``). Reading the planes in the model's order is the colour swap;
NCHW inputs get the look-ups written straight into their planes, NHWC ones one ``cv2.merge``.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..bundle import Artifact, InputSpec
from ..errors import ConfigError, suggest
from .adapters import pixel_lut

__all__ = ["Preprocessor", "RESIZE_MODES", "to_bgr", "fit_rect"]

INTERPOLATION = {
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
RESIZE_MODES = ("squash", "center_crop", "letterbox")
_LUT_DEPTHS = {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32)}
_U8 = np.dtype(np.uint8)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Gray (H, W) or (H, W, 1), BGRA (H, W, 4) and 16-bit frames -> (H, W, 3) uint8 BGR."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise ValueError(f"a frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {frame.shape}")


def fit_rect(src_h: int, src_w: int, dst_h: int, dst_w: int, mode: str) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """``(source crop y, x, h, w), (target box y, x, h, w)`` for a resize mode.

    squash: whole frame into the whole target. center_crop: the largest centred source region with the
    target's aspect ratio (what torchvision's Resize(short side) + CenterCrop keeps). letterbox: the whole
    frame scaled to fit, centred, the rest padded.
    """
    if mode == "squash":
        return (0, 0, src_h, src_w), (0, 0, dst_h, dst_w)
    if mode == "center_crop":
        scale = max(dst_h / src_h, dst_w / src_w)
        ch, cw = min(src_h, round(dst_h / scale)), min(src_w, round(dst_w / scale))
        return ((src_h - ch) // 2, (src_w - cw) // 2, ch, cw), (0, 0, dst_h, dst_w)
    if mode == "letterbox":
        scale = min(dst_h / src_h, dst_w / src_w)
        bh, bw = max(1, round(src_h * scale)), max(1, round(src_w * scale))
        return (0, 0, src_h, src_w), ((dst_h - bh) // 2, (dst_w - bw) // 2, bh, bw)
    raise ConfigError(f"unknown resize_mode '{mode}'{suggest(mode, RESIZE_MODES)}")


class Preprocessor:
    """Reusable frame -> tensor converter for one artifact. Not thread-safe: one per loop.

    >>> pre = Preprocessor(manifest.input, artifact, batch=1)     # doctest: +SKIP
    >>> x = pre(frame_bgr)        # the same array object every call, refilled in place
    """

    def __init__(self, spec: InputSpec, artifact: Artifact, *, batch: int = 1):
        if spec.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"bundle input.resize_mode '{spec.resize_mode}' is not supported{suggest(spec.resize_mode, RESIZE_MODES)}")
        self.spec, self.artifact = spec, artifact
        self.h, self.w = int(spec.height), int(spec.width)
        self.interp = INTERPOLATION.get(spec.interpolation, cv2.INTER_LINEAR)
        self.swap_rb = spec.color_order.upper() == "RGB"
        lut = pixel_lut(spec, artifact)  # (256, 3) in the model's input dtype
        self.dtype = lut.dtype
        # cv2.LUT writes uint8/int8/float32 directly; other types (float16) go through float32
        self._lut = np.ascontiguousarray((lut if lut.dtype in _LUT_DEPTHS else lut.astype(np.float32))[None])
        self._resized = np.empty((self.h, self.w, 3), np.uint8)
        self._ordered = np.empty((self.h, self.w, 3), np.uint8)
        self._mapped = np.empty((self.h, self.w, 3), self._lut.dtype)
        self.nchw = artifact.layout == "NCHW"
        shape = (batch, 3, self.h, self.w) if self.nchw else (batch, self.h, self.w, 3)
        self.out = np.empty(shape, self.dtype)
        self._src_shape: tuple[int, int] | None = None
        self._rects = None
        # letterbox padding: the mean colour, so padded pixels normalise to ~0 (BGR order, as resized)
        mean_rgb = [round(m * spec.pixel_scale) for m in spec.mean]
        self._pad = np.array(mean_rgb[::-1] if self.swap_rb else mean_rgb, np.uint8)
        # Per frame, the resized BGR image is split into planes and each model channel gets a one-channel
        # table look-up from the plane of its colour: the colour swap costs nothing, one-channel tables are
        # about twice as fast as a three-channel one, and NCHW planes are written in place (no transpose).
        self._embedded = artifact.embedded_preprocess
        self._planes = tuple(np.empty((self.h, self.w), np.uint8) for _ in range(3))
        self._luts = tuple(np.ascontiguousarray(self._lut[0, :, c]) for c in range(3))
        self._plane_of = (2, 1, 0) if self.swap_rb else (0, 1, 2)  # BGR plane feeding model channel c
        self._direct = self._lut.dtype == self.dtype
        self._mapped_planes = tuple(np.empty((self.h, self.w), self._lut.dtype) for _ in range(3))
        self._slots: dict[int, tuple] = {}
        self._slots_of: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One frame -> ``self.out`` of shape (1, ...) (refilled in place; copy it to keep it)."""
        if self._embedded:
            return self._passthrough(frame)[None]
        return self.fill(frame, 0)

    def _passthrough(self, frame: np.ndarray) -> np.ndarray:
        """Artifacts with the resize, colour conversion and normalisation inside (OpenVINO PrePostProcessor)
        take the whole camera frame as u8 BGR NHWC: gray/BGRA/16-bit frames are converted, nothing else."""
        return np.ascontiguousarray(to_bgr(frame))

    def _resize_bgr(self, frame: np.ndarray) -> np.ndarray:
        """Frame -> the model-size uint8 BGR image (``self._resized``)."""
        if frame.dtype is not _U8 or frame.ndim != 3 or frame.shape[2] != 3:
            frame = to_bgr(frame)
        if frame.shape[:2] != self._src_shape:
            self._setup(*frame.shape[:2])
        if self._whole:
            cv2.resize(frame, self._size, self._resized, 0, 0, self.interp)
        else:
            (cy, cx, ch, cw), (by, bx, bh, bw) = self._rects
            src = frame[cy:cy + ch, cx:cx + cw]
            if (bh, bw) == (self.h, self.w):
                cv2.resize(src, self._size, dst=self._resized, interpolation=self.interp)
            else:
                cv2.resize(src, (bw, bh), dst=self._box, interpolation=self.interp)
                self._resized[by:by + bh, bx:bx + bw] = self._box
        return self._resized

    def _setup(self, sh: int, sw: int) -> None:
        """A new source size: the resize geometry, computed once per size, not per frame."""
        self._src_shape = (sh, sw)
        self._rects = fit_rect(sh, sw, self.h, self.w, self.spec.resize_mode)
        self._resized[:] = self._pad  # border stays; only the box is rewritten per frame
        (_, _, bh, bw) = self._rects[1]
        self._box = np.empty((bh, bw, 3), np.uint8)
        self._size = (self.w, self.h)
        self._whole = self._rects == ((0, 0, sh, sw), (0, 0, self.h, self.w))

    def resize(self, frame: np.ndarray) -> np.ndarray:
        """Frame -> the model-size uint8 image in the model's colour order (a view of an internal buffer)."""
        img = self._resize_bgr(frame)
        if self.swap_rb:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=self._ordered)
            return self._ordered
        return img

    def _slot(self, i: int) -> tuple:
        """``(self.out[:i + 1], self.out[i], per-channel destinations)`` for batch slot ``i``, built once."""
        if self._slots_of is not self.out:  # the buffer was reallocated (a larger batch)
            self._slots, self._slots_of = {}, self.out
        out_i = self.out[i]
        dsts = tuple(out_i[c] for c in range(3)) if self.nchw and self._direct else self._mapped_planes
        slot = self._slots[i] = (self.out[:i + 1], out_i, dsts)
        return slot

    def fill(self, frame: np.ndarray, i: int) -> np.ndarray:
        """Write ``frame`` into batch slot ``i`` of ``self.out``; returns ``self.out[:i + 1]``."""
        bgr = self._resize_bgr(frame)
        slot = self._slots.get(i) if self._slots_of is self.out else None
        head, out_i, dsts = slot or self._slot(i)
        planes, luts = self._planes, self._luts
        p0, p1, p2 = self._plane_of
        # positional arguments: the bindings parse them faster than keywords (this runs every frame)
        cv2.split(bgr, planes)
        cv2.LUT(planes[p0], luts[0], dsts[0])
        cv2.LUT(planes[p1], luts[1], dsts[1])
        cv2.LUT(planes[p2], luts[2], dsts[2])
        if self._direct:
            if not self.nchw:
                cv2.merge(dsts, out_i)
        elif self.nchw:
            for c in range(3):
                np.copyto(out_i[c], dsts[c], casting="unsafe")
        else:
            cv2.merge(dsts, self._mapped)
            np.copyto(out_i, self._mapped, casting="unsafe")
        return head

    def batch(self, frames) -> np.ndarray:
        """A list of frames -> (N, ...) tensor (grows the buffer when N exceeds it)."""
        n = len(frames)
        if self.artifact.embedded_preprocess:
            return np.stack([self._passthrough(f).copy() for f in frames])
        if n > self.out.shape[0]:
            self.out = np.empty((n, *self.out.shape[1:]), self.dtype)
        for i, f in enumerate(frames):
            self.fill(f, i)
        return self.out[:n]

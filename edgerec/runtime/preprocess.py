"""Camera frame (any size, BGR/gray/BGRA) -> the model's input tensor, into buffers allocated once.

The steps come from the bundle's contract only (``InputSpec`` + ``Artifact``) and from the deploy-time
region of interest: the geometry and the resize are ``edgerec.runtime.image``'s (``resize_plan`` +
``apply_plan``, the same functions training reads its images with), planned once per frame size and ROI.
Per frame the work is the resize into a preallocated image, a split into its three colour planes, and one
table look-up (``cv2.LUT``) per model channel, read from the plane of that channel's colour, that does
normalisation *and* quantization in a single pass (see ``adapters.pixel_lut``). Reading the planes in the
model's order is the colour swap; NCHW inputs get the look-ups written straight into their planes, NHWC
ones one ``cv2.merge``.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ..bundle import Artifact, InputSpec
from ..errors import ConfigError, suggest
from .adapters import pixel_lut
from .image import INTERPOLATIONS, RESIZE_MODES, apply_plan, aspect_distortion, fit_rect, pad_colour, resize_plan, to_bgr
from .roi import Roi, parse_roi

__all__ = ["Preprocessor", "RESIZE_MODES", "to_bgr", "fit_rect", "SQUASH_WARNING"]

log = logging.getLogger("edgerec.runtime")

INTERPOLATION = INTERPOLATIONS  # the names InputSpec.interpolation takes (edgerec.runtime.image)
SQUASH_WARNING = 0.10  # aspect distortion above which a squashed frame is worth a (one-time) warning
_LUT_DEPTHS = {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32)}
_U8 = np.dtype(np.uint8)


class Preprocessor:
    """Reusable frame -> tensor converter for one artifact. Not thread-safe: one per loop.

    ``roi``: the region of each frame to classify (``Roi``, ``"x,y,w,h"`` in pixels or fractions), checked
    against the frame on the first frame of each size.

    >>> pre = Preprocessor(manifest.input, artifact, batch=1)     # doctest: +SKIP
    >>> x = pre(frame_bgr)        # the same array object every call, refilled in place
    """

    def __init__(self, spec: InputSpec, artifact: Artifact, *, batch: int = 1, roi: "Roi | str | None" = None):
        if spec.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"bundle input.resize_mode '{spec.resize_mode}' is not supported{suggest(spec.resize_mode, RESIZE_MODES)}")
        if spec.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"bundle input.interpolation '{spec.interpolation}' is not supported"
                              f"{suggest(spec.interpolation, INTERPOLATIONS)}", hint="update edgerec, or re-export the bundle")
        self.spec, self.artifact = spec, artifact
        self.roi = parse_roi(roi)
        self.h, self.w = int(spec.height), int(spec.width)
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
        self._key: tuple | None = None  # (frame h, frame w, roi) the plan below was made for
        self._plan = None
        self._roi_arg, self._roi_parsed = None, None  # the last per-call ROI and its parse
        self.last_roi: tuple[int, int, int, int] | None = None  # (x, y, w, h) in pixels of the last frame, or None
        self._warned = False
        self._pad = np.array(pad_colour(spec), np.uint8)  # letterbox: the mean colour (BGR, as resized)
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

    def __call__(self, frame: np.ndarray, roi: "Roi | str | None" = None) -> np.ndarray:
        """One frame -> ``self.out`` of shape (1, ...) (refilled in place; copy it to keep it).

        ``roi`` replaces the preprocessor's own ROI for this call.
        """
        if self._embedded:
            return self._passthrough(frame, roi)[None]
        return self.fill(frame, 0, roi)

    def _roi(self, roi) -> Roi | None:
        if roi is None:
            return self.roi
        if roi is not self._roi_arg:  # parsed once per distinct argument, not per frame
            self._roi_arg, self._roi_parsed = roi, parse_roi(roi)
        return self._roi_parsed

    def _passthrough(self, frame: np.ndarray, roi=None) -> np.ndarray:
        """Artifacts with the resize, colour conversion and normalisation inside (OpenVINO PrePostProcessor)
        take the whole camera frame (or its ROI) as u8 BGR NHWC: gray/BGRA/16-bit frames are converted."""
        r = self._roi(roi)
        if r is not None:
            x, y, w, h = self.last_roi = r.pixels(*frame.shape[:2])
            frame = frame[y:y + h, x:x + w]
        return np.ascontiguousarray(to_bgr(frame))

    def _resize_bgr(self, frame: np.ndarray, roi=None) -> np.ndarray:
        """Frame -> the model-size uint8 BGR image (``self._resized``)."""
        if frame.dtype is not _U8 or frame.ndim != 3 or frame.shape[2] != 3:
            frame = to_bgr(frame)
        r = self._roi(roi)
        key = (frame.shape[0], frame.shape[1], r)
        if key != self._key:
            self._setup(*key)
        if self.last_roi is not None:
            x, y, w, h = self.last_roi
            frame = frame[y:y + h, x:x + w]
        return apply_plan(frame, self._plan, self._resized, self._bufs)

    def _setup(self, sh: int, sw: int, roi: Roi | None) -> None:
        """A new frame size or ROI: the ROI check and the resize plan, made once, not per frame."""
        self._key = None  # stays unset if the ROI check below fails: the next frame fails the same way
        self.last_roi = roi.pixels(sh, sw) if roi is not None else None
        key = (sh, sw, roi)
        if self.last_roi is not None:
            sw, sh = self.last_roi[2:]
        plan = resize_plan(sh, sw, self.spec)
        if self.spec.resize_mode == "squash" and not self._warned and aspect_distortion(sh, sw, self.h, self.w) > SQUASH_WARNING:
            self._warned = True
            log.warning(self._squash_message(sh, sw))
        self._resized[:] = self._pad  # border stays; only the box is rewritten per frame
        self._bufs = plan.buffers()
        self._plan = plan
        self._key = key

    def _squash_message(self, sh: int, sw: int) -> str:
        d = aspect_distortion(sh, sw, self.h, self.w)
        # the centred region of the model's aspect, as fractions: what an ROI would keep undistorted
        (cy, cx, ch, cw), _ = fit_rect(sh, sw, self.h, self.w, "center_crop")
        frac = f"{cx / sw:.4g},{cy / sh:.4g},{cw / sw:.4g},{ch / sh:.4g}"
        return (f"frames of {sw}x{sh} are squashed into the model's {self.w}x{self.h} input (bundle resize_mode "
                f"'squash'): objects are stretched by {d:.0%}. Pass a region of the model's aspect ratio "
                f"(--roi {frac}, or roi= in Python/YAML) or re-train with resize_mode center_crop (the default, 'auto')")

    def resize(self, frame: np.ndarray, roi: "Roi | str | None" = None) -> np.ndarray:
        """Frame -> the model-size uint8 image in the model's colour order (a view of an internal buffer)."""
        img = self._resize_bgr(frame, roi)
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

    def fill(self, frame: np.ndarray, i: int, roi: "Roi | str | None" = None) -> np.ndarray:
        """Write ``frame`` into batch slot ``i`` of ``self.out``; returns ``self.out[:i + 1]``."""
        bgr = self._resize_bgr(frame, roi)
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

    def batch(self, frames, roi: "Roi | str | None" = None) -> np.ndarray:
        """A list of frames -> (N, ...) tensor (grows the buffer when N exceeds it)."""
        n = len(frames)
        if self.artifact.embedded_preprocess:
            return np.stack([self._passthrough(f, roi).copy() for f in frames])
        if n > self.out.shape[0]:
            self.out = np.empty((n, *self.out.shape[1:]), self.dtype)
        for i, f in enumerate(frames):
            self.fill(f, i, roi)
        return self.out[:n]

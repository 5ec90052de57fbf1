"""The one pre-processing contract: file or frame -> the uint8 image a model sees. numpy + OpenCV only.

Training, evaluation, calibration, export verification and the runtime all call these functions, so the
pixels a model is trained on are the pixels it is fed on a board (timm's ``create_transform`` idea, without
torch or Pillow, which boards do not have). Augmentation is a separate, training-only step on top.

1. **Reading** (``read_image_bgr``/``decode_image``): ``cv2.imdecode`` with the file's own channels and
   depth, then EXIF orientation (parsed here for JPEG, PNG and WebP, so every OpenCV version turns pictures
   the same way; OpenCV's TIFF decoder applies TIFF orientation and converts CMYK itself), then ``to_bgr``. A JPEG without its end marker is reported as truncated instead of
   coming back grey-filled. Pillow is used for one thing only: GIFs when this OpenCV has no GIF decoder
   (before 4.11).
2. **Colour** (``to_bgr``, for files and camera frames alike): gray -> three equal channels; 16-bit ->
   ``round(v / 257)``; an alpha channel is composited **on white** (a transparent pixel becomes white, not
   black). An alpha plane that is 0 everywhere or 255 everywhere is dropped as it is: the first is the padding
   byte of BGRx camera formats, not transparency.
3. **Geometry** (``fit_rect``): ``squash`` (whole frame to the whole input), ``center_crop`` (the largest
   centred region of the input's aspect ratio, what torchvision/timm evaluate with: short side + centre
   crop) or ``letterbox`` (the whole frame scaled to fit, centred, padded with ``pad_colour``: the mean
   colour, which normalises to 0).
4. **Resize** (``resize_plan`` + ``apply_plan``), one rule named by ``InputSpec.interpolation``:
   ``area+bilinear`` (what training writes; ``area+bicubic`` for weights evaluated bicubic): while the
   source region is at least twice the target on both axes, it is halved with ``INTER_AREA`` (exact 2x2
   pixel averages: anti-aliased, and OpenCV's fastest resize path; a region that does not halve evenly loses
   the few pixels over, fewer than one output pixel's worth, evenly from both sides), then ``INTER_LINEAR``
   (``INTER_CUBIC``) covers the remaining factor (under 2 on at least one axis), like an image pyramid or
   Pillow's ``reducing_gap``. ``bilinear``, ``nearest``, ``bicubic``, ``area``: that OpenCV interpolation alone
   (bundles written before ``area+bilinear`` say ``bilinear``, and keep meaning plain ``INTER_LINEAR``).

``model_image(img, spec)`` does 3 and 4 into a new array; ``edgerec.runtime.preprocess.Preprocessor`` does
the same steps into buffers allocated once per frame size (and adds the colour order and the tensor).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, DataError, suggest

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "INTERPOLATIONS",
    "read_image_bgr",
    "decode_image",
    "to_bgr",
    "fit_rect",
    "pad_colour",
    "ResizePlan",
    "resize_plan",
    "apply_plan",
    "model_image",
    "aspect_distortion",
    "PREPROCESS_VERSION",
]

# Bump when the pixels these functions produce change (reading, colour, geometry or resize): training's
# decoded-image cache (``edgerec.train.cache``) keys on it, so a change here rebuilds every cache.
PREPROCESS_VERSION = 1

# Extensions edgerec reads (datasets, `edgerec run photos/`, `edgerec bench --data`); any case.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
RESIZE_MODES = ("squash", "center_crop", "letterbox")
INTERPOLATIONS = {
    "area+bilinear": cv2.INTER_LINEAR,  # after the INTER_AREA halvings (see resize_plan)
    "area+bicubic": cv2.INTER_CUBIC,  # the same, for weights evaluated with bicubic resizing
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
_REDUCING = {"area+bilinear", "area+bicubic"}

# --------------------------------------------------------------------------------------------- reading


def read_image_bgr(path: str | Path, *, draft: int | None = None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 **BGR**, upright, alpha composited on white.

    An empty, truncated, corrupt or missing file raises ``DataError`` naming the file. ``draft=N`` lets a
    JPEG decode at 1/2, 1/4 or 1/8 scale while both sides stay >= N (libjpeg's DCT scaling); training and the
    runtime never use it, because a camera frame is never decoded that way.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"image not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not an image") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_image(data, name=str(path), draft=draft)


def decode_image(data: bytes, *, name: str = "image", draft: int | None = None) -> np.ndarray:
    """Encoded bytes (JPEG, PNG, BMP, GIF, TIFF, WebP, PNM) -> (H, W, 3) uint8 BGR, as ``read_image_bgr``."""
    if len(data) == 0:
        raise DataError(f"{name} is empty (0 bytes)", hint="delete or replace the file")
    kind = _kind(data)
    flags = cv2.IMREAD_UNCHANGED  # own channels and depth, no orientation: both are applied below
    orientation = 1
    if kind == "jpeg":
        info = _jpeg_info(data)
        if info.truncated:
            raise DataError(f"{name} is truncated (no end-of-image marker)", hint="re-copy or re-export the file")
        orientation = info.orientation
        scale = _draft_scale(info.size, draft) if draft else 1
        if scale > 1:
            flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                     8: cv2.IMREAD_REDUCED_COLOR_8}[scale] | cv2.IMREAD_IGNORE_ORIENTATION
    elif kind == "png":
        exif, complete = _png_info(data)
        if not complete:
            raise DataError(f"{name} is truncated (no IEND chunk)", hint="re-copy or re-export the file")
        orientation = _tiff_tags(exif).get(0x0112, 1) if exif else 1
    elif kind == "webp":
        exif = _riff_chunk(data, b"EXIF")
        orientation = _tiff_tags(exif.removeprefix(b"Exif\0\0")).get(0x0112, 1) if exif else 1
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None and kind == "gif":
        img = _gif_with_pillow(data, name)
    if img is None or img.size == 0:
        if kind is None:
            raise DataError(f"{name} is not an image edgerec can read", hint="delete the file or convert it to PNG/JPEG")
        raise DataError(f"{name} is corrupt (OpenCV cannot decode this {kind.upper()})", hint="delete or replace the file")
    if orientation in _ORIENT:
        img = _ORIENT[orientation](img)
    return np.ascontiguousarray(to_bgr(img))


def _kind(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:1] == b"P" and data[1:2] in b"123456":
        return "pnm"
    return None


@dataclass
class _JpegInfo:
    size: tuple[int, int] | None = None  # (height, width) as stored
    orientation: int = 1
    truncated: bool = False


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_info(data: bytes) -> _JpegInfo:
    """Walk the markers up to the first scan: frame size, EXIF orientation, and whether the end marker exists.

    Entropy-coded data never holds FF D9 (FF bytes are stuffed), and an EXIF thumbnail's own end marker sits
    inside the APP1 segment, which is skipped by its length: so no FF D9 after the first scan = truncated.
    """
    info = _JpegInfo()
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return info  # not a marker where one must be: let the decoder say what is wrong
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        seg = data[pos + 4:pos + 2 + length]
        if marker == 0xE1 and seg[:6] == b"Exif\0\0" and info.orientation == 1:
            info.orientation = _tiff_tags(seg[6:]).get(0x0112, 1)
        elif marker in _SOF and len(seg) >= 5:
            info.size = (int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"))
        elif marker == 0xDA:  # start of scan
            info.truncated = data.rfind(b"\xff\xd9") < pos + 2 + length
            return info
        pos += 2 + length
    info.truncated = True  # the headers themselves are cut off
    return info


def _draft_scale(size: tuple[int, int] | None, draft: int) -> int:
    if size is None:
        return 1
    h, w = size
    return next((k for k in (8, 4, 2) if -(-h // k) >= draft and -(-w // k) >= draft), 1)


def _png_info(data: bytes) -> tuple[bytes | None, bool]:
    """(the eXIf chunk or None, whether the IEND chunk is there)."""
    pos, n, exif = 8, len(data), None
    while pos + 8 <= n:
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        if ctype == b"eXIf":
            exif = data[pos + 8:pos + 8 + length]
        elif ctype == b"IEND":
            return exif, True
        pos += 12 + length
    return exif, False


def _riff_chunk(data: bytes, fourcc: bytes) -> bytes | None:
    pos, n = 12, len(data)
    while pos + 8 <= n:
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == fourcc:
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def _tiff_tags(tiff: bytes) -> dict[int, int]:
    """SHORT/LONG tags of a TIFF structure's first IFD (EXIF is one): ``{tag: value}``; {} when unreadable."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return {}
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        tags = {}
        for i in range(min(count, 512)):
            tag, typ = struct.unpack_from(order + "HH", tiff, ifd + 2 + 12 * i)
            if typ == 3:  # SHORT
                tags[tag] = struct.unpack_from(order + "H", tiff, ifd + 10 + 12 * i)[0]
            elif typ == 4:  # LONG
                tags[tag] = struct.unpack_from(order + "I", tiff, ifd + 10 + 12 * i)[0]
        return tags
    except struct.error:
        return {}


# EXIF orientation -> the transform that stands the picture upright (as Pillow's ImageOps.exif_transpose)
_ORIENT = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.transpose(a),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _gif_with_pillow(data: bytes, name: str) -> np.ndarray | None:
    """OpenCV before 4.11 has no GIF decoder; Pillow (first frame) is the fallback where it is installed."""
    try:
        import io

        from PIL import Image  # only for GIFs on old OpenCV builds; boards usually have neither
    except ImportError:
        raise DataError(f"{name}: this OpenCV ({cv2.__version__}) cannot decode GIF",
                        hint="convert the file to PNG, or install OpenCV >= 4.11 (or Pillow)") from None
    with Image.open(io.BytesIO(data)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)


# --------------------------------------------------------------------------------------------- colour


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Gray (H, W) or (H, W, 1), BGR, BGRA (H, W, 4), 16-bit or float frames -> (H, W, 3) uint8 BGR.

    16-bit values become ``round(v / 257)`` (65535 -> 255); floats are clipped to 0..255. Alpha is composited
    on white: ``out = 255 - (255 - c) * a / 255``, rounded. An alpha plane that is all 0 (BGRx padding) or all
    255 is dropped without compositing.
    """
    if frame.dtype != np.uint8:
        if frame.dtype == np.uint16:
            frame = ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)
        else:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        alpha = np.ascontiguousarray(frame[..., 3])
        lo, hi = cv2.minMaxLoc(alpha)[:2]
        if hi == 0 or lo == 255:
            return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        ink = (255 - frame[..., :3]).astype(np.uint16) * alpha[..., None]
        return (255 - (ink + 127) // 255).astype(np.uint8)
    raise ValueError(f"a frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {frame.shape}")


# --------------------------------------------------------------------------------------------- geometry


def fit_rect(src_h: int, src_w: int, dst_h: int, dst_w: int, mode: str) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """``(source crop y, x, h, w), (target box y, x, h, w)`` for a resize mode.

    squash: whole frame into the whole target. center_crop: the largest centred source region with the
    target's aspect ratio (what torchvision's Resize(short side) + CenterCrop keeps; integer arithmetic,
    rounded half up). letterbox: the whole frame scaled to fit, centred, the rest padded.
    """
    if mode == "squash":
        return (0, 0, src_h, src_w), (0, 0, dst_h, dst_w)
    if mode == "center_crop":
        ch = min(src_h, (2 * src_w * dst_h + dst_w) // (2 * dst_w))
        cw = min(src_w, (2 * src_h * dst_w + dst_h) // (2 * dst_h))
        return ((src_h - ch) // 2, (src_w - cw) // 2, ch, cw), (0, 0, dst_h, dst_w)
    if mode == "letterbox":
        scale = min(dst_h / src_h, dst_w / src_w)
        bh, bw = max(1, min(dst_h, round(src_h * scale))), max(1, min(dst_w, round(src_w * scale)))
        return (0, 0, src_h, src_w), ((dst_h - bh) // 2, (dst_w - bw) // 2, bh, bw)
    raise ConfigError(f"unknown resize_mode '{mode}'{suggest(mode, RESIZE_MODES)}")


def aspect_distortion(src_h: int, src_w: int, dst_h: int, dst_w: int) -> float:
    """How much ``squash`` stretches a src_h x src_w region into dst_h x dst_w: 0.0 = none, 0.33 = 4:3 into 1:1."""
    a, b = src_w / src_h, dst_w / dst_h
    return max(a, b) / min(a, b) - 1.0


def pad_colour(spec) -> tuple[int, int, int]:
    """Letterbox padding as a **BGR** uint8 triple: the mean colour, so padded pixels normalise to ~0."""
    c = [int(np.clip(round(m * spec.pixel_scale), 0, 255)) for m in spec.mean]  # in the model's colour order
    b, g, r = c[::-1] if str(spec.color_order).upper() == "RGB" else c
    return b, g, r


@dataclass(frozen=True)
class ResizePlan:
    """Everything the resize of one source size needs, computed once per size (not per frame)."""

    crop: tuple[int, int, int, int]  # source region y, x, h, w
    box: tuple[int, int, int, int]  # where it lands in the target, y, x, h, w
    halvings: tuple[tuple[int, int], ...]  # (w, h) after each INTER_AREA halving step, in order
    interp: int  # OpenCV flag of the last resize, onto the box

    @property
    def fills_target(self) -> bool:
        return self.box[0] == 0 and self.box[1] == 0

    def buffers(self, channels: int = 3) -> tuple[np.ndarray, ...]:
        """Preallocated destinations for ``apply_plan``: one per halving, then the box."""
        sizes = [*self.halvings, (self.box[3], self.box[2])]
        return tuple(np.empty((h, w, channels), np.uint8) for w, h in sizes)


def _halvings(c: int, b: int) -> int:
    """How many times a side of ``c`` pixels is halved on its way to ``b``: while it stays >= 2b."""
    n = 0
    while c >= (b << (n + 1)):
        n += 1
    return n


def resize_plan(src_h: int, src_w: int, spec, *, mode: str | None = None) -> ResizePlan:
    """The crop, target box, halvings and interpolation for a src_h x src_w source and ``spec``."""
    interp_name = spec.interpolation
    if interp_name not in INTERPOLATIONS:
        raise ConfigError(f"unknown interpolation '{interp_name}'{suggest(interp_name, INTERPOLATIONS)}")
    crop, box = fit_rect(src_h, src_w, int(spec.height), int(spec.width), mode or spec.resize_mode)
    (cy, cx, ch, cw), (bh, bw) = crop, box[2:]
    halvings: list[tuple[int, int]] = []
    # both axes at once: OpenCV's fast, exact 2x2-average path (halving one axis alone takes its slow generic
    # path, ~10x slower); with center_crop (and an ROI of the model's shape) both axes need the same number
    n = min(_halvings(ch, bh), _halvings(cw, bw)) if interp_name in _REDUCING else 0
    if n:
        # the halvings need sides that halve evenly: the pixels over a multiple of 2^n, always fewer than one
        # output pixel's worth, are trimmed evenly from both sides of the region
        ty, tx = ch % (1 << n), cw % (1 << n)
        crop = (cy + ty // 2, cx + tx // 2, ch - ty, cw - tx)
        h, w = crop[2], crop[3]
        for _ in range(n):
            h, w = h // 2, w // 2
            halvings.append((w, h))
    return ResizePlan(crop, box, tuple(halvings), INTERPOLATIONS[interp_name])


def apply_plan(img: np.ndarray, plan: ResizePlan, out: np.ndarray, bufs: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """Resize ``img`` (uint8, H x W x C) per ``plan`` into ``out`` (the padding already there).

    ``bufs``: ``plan.buffers()`` made once, so a video loop allocates nothing per frame.
    """
    if bufs is None:
        bufs = plan.buffers(img.shape[2] if img.ndim == 3 else 1)
    y, x, h, w = plan.crop
    src = img[y:y + h, x:x + w]
    for i, size in enumerate(plan.halvings):
        cv2.resize(src, size, bufs[i], 0, 0, cv2.INTER_AREA)
        src = bufs[i]
    by, bx, bh, bw = plan.box
    whole = (bh, bw) == out.shape[:2]
    if src.shape[:2] == (bh, bw):  # nothing left to interpolate
        if whole:
            out[:] = src
        else:
            out[by:by + bh, bx:bx + bw] = src
        return out
    if whole:
        cv2.resize(src, (bw, bh), out, 0, 0, plan.interp)
        return out
    box = bufs[len(plan.halvings)]
    cv2.resize(src, (bw, bh), box, 0, 0, plan.interp)
    out[by:by + bh, bx:bx + bw] = box
    return out


def model_image(img_bgr: np.ndarray, spec, *, mode: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """A frame or decoded file (any size; gray/BGRA/16-bit converted) -> the model-size uint8 image, BGR.

    Exactly what ``Preprocessor.resize`` produces before the colour swap; training reads its images through
    this function (then flips to RGB), so both give the same pixels. ``out``: a (H, W, 3) uint8 array to fill.
    """
    img = to_bgr(img_bgr)
    plan = resize_plan(img.shape[0], img.shape[1], spec, mode=mode)
    if out is None:
        out = np.empty((int(spec.height), int(spec.width), 3), np.uint8)
    if not (plan.fills_target and plan.box[2:] == out.shape[:2]):
        out[:] = pad_colour(spec)
    return apply_plan(img, plan, out)

"""Reading images: any file a camera, phone or scanner writes, as (H, W, 3) uint8 RGB.

``read_image`` is the runtime's reader (``edgerec.runtime.image.read_image_bgr``: OpenCV, no Pillow), so a
training image and the same file given to ``edgerec run`` or ``Classifier`` decode to the same pixels:

=================================  =============================================================
stored as                          becomes
=================================  =============================================================
gray, bilevel, palette             RGB (three equal channels; palette expanded)
gray+alpha, RGBA, palette+tRNS     composited on white (transparent pixels turn white, not black)
16-bit                             ``round(v / 257)`` (65535 -> 255, the tonal range kept)
CMYK (JPEG, TIFF)                  RGB
=================================  =============================================================

EXIF orientation is applied, so a phone picture stands the way it was taken. Truncated files are errors,
never silently padded with grey.

Pillow is kept for what OpenCV cannot do: ``probe_image`` (``edgerec data check`` and ``load_dataset``'s
full check) reports each file's stored mode (``L``, ``RGBA``, ``I;16``, ``CMYK``...) and decodes JPEGs at
1/8 scale to find truncated and corrupt files quickly; it is imported only when a probe runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..limits import check_image_pixels
from ..runtime.image import IMAGE_EXTENSIONS, read_image_bgr

__all__ = ["IMAGE_EXTENSIONS", "read_image", "is_image_file", "ImageInfo", "probe_image", "upright_size"]


def is_image_file(path: str | Path) -> bool:
    """True when the extension is one edgerec reads (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _open(path: Path, draft: int | None = None):
    """Open and fully decode ``path`` with Pillow; any failure is a ``DataError`` with the reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # the probe's reason to exist: stored modes, 1/8-scale checks

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"image not found: {path}", hint="check the path") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes)", hint="delete or replace the file")
    try:
        im = Image.open(path)
        full_size = im.size
        try:  # from the header, before decoding: the limit the runtime's image source applies too
            check_image_pixels(*full_size, where=str(path))
        except DataError:
            im.close()
            raise
        if draft and im.format == "JPEG":
            # JPEG's DCT can decode at 1/2, 1/4 or 1/8 scale; Pillow picks the smallest that keeps both
            # sides >= draft, so a later resize to ``draft`` loses nothing and decoding is several times faster.
            # The whole entropy-coded stream is still read, so truncation is still caught.
            im.draft(im.mode, (draft, draft))
        im.load()  # decodes everything: a truncated file raises here instead of coming back half grey
        if "exif" in im.info or im.format == "TIFF":  # skip the EXIF parse where there is none (PNG, BMP)
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # these orientations turn the picture by 90 degrees
                full_size = full_size[::-1]
            ImageOps.exif_transpose(im, in_place=True)
        im.full_size = full_size  # (width, height) as stored, upright; im.size is smaller after a draft
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image Pillow can read", hint="delete the file or convert it to PNG/JPEG") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path} is too large to decode safely: {exc}", hint="downscale the file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's ways of saying "broken"
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            raise DataError(f"{path} is truncated ({reason})", hint="re-copy or re-export the file") from exc
        raise DataError(f"{path} is corrupt ({reason})", hint="delete or replace the file") from exc
    return im


def read_image(path: str | Path, *, draft: int | None = None) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array.

    Grayscale, palette, RGBA/LA (composited on white), 16-bit and CMYK images are converted;
    EXIF orientation is applied. An empty, truncated, corrupt or missing file raises ``DataError``.
    The same decoding as the runtime's (``edgerec.runtime.image.read_image_bgr``), in RGB order.

    ``draft=N`` lets JPEGs decode at a reduced scale (1/2, 1/4, 1/8) as long as both sides stay at least
    N pixels (a 4000x3000 photo read for a 224 px model decodes at 500x375). Training does not use it: the
    runtime's frames are never decoded that way, and the two must see the same pixels.

    >>> img = read_image("digits/3/0007.png")   # doctest: +SKIP
    >>> img.shape, img.dtype                      # doctest: +SKIP
    ((32, 32, 3), dtype('uint8'))
    """
    return cv2.cvtColor(read_image_bgr(path, draft=draft), cv2.COLOR_BGR2RGB)


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What ``probe_image`` learns about one file; ``error`` is None when the file decodes."""

    path: Path
    nbytes: int
    error: str | None = None
    kind: str | None = None  # "empty" | "truncated" | "corrupt" | "unreadable" when error is set
    mode: str | None = None
    width: int = 0
    height: int = 0
    format: str | None = None
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def probe_image(path: str | Path, *, digest: bool = False) -> ImageInfo:
    """Decode ``path`` and report its mode, size (upright, as stored) and problems without raising.

    JPEGs decode at 1/8 scale (every byte of the compressed stream is still read, so truncated and
    corrupt files are caught the same way), which makes checking camera pictures several times faster.

    ``digest=True`` also hashes the file's bytes (SHA-256) to find exact duplicates.
    """
    path = Path(path)
    try:
        nbytes = path.stat().st_size
    except OSError as exc:
        return ImageInfo(path, 0, error=str(exc.strerror or exc), kind="unreadable")
    sha = None
    if digest:
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            return ImageInfo(path, nbytes, error=str(exc.strerror or exc), kind="unreadable")
    try:
        im = _open(path, draft=1)  # JPEG at 1/8 scale: same checks, a fraction of the decoding
    except DataError as exc:
        text = exc.message
        kind = "empty" if nbytes == 0 else "truncated" if " is truncated" in text else "corrupt"
        # keep only the reason, the path is reported beside it
        reason = text.replace(str(path), "").strip().removeprefix("is ")
        return ImageInfo(path, nbytes, error=reason, kind=kind, sha256=sha)
    try:
        w, h = im.full_size
        return ImageInfo(path, nbytes, mode=im.mode, width=w, height=h, format=im.format, sha256=sha)
    finally:
        im.close()


def upright_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` as the picture stands (EXIF orientation applied), from the header only; None if unreadable.

    Pillow reads headers without decoding (OpenCV cannot); training uses it to see its images' aspect ratios.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if ("exif" in im.info or im.format == "TIFF") and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            return int(w), int(h)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError):
        return None

"""Still images: one file, a folder (sorted, recursive) or a glob. Unreadable files are skipped and counted,
and so are files whose header says they are larger than ``limits.MAX_IMAGE_PIXELS`` (checked before
decoding, which is what would allocate them)."""

from __future__ import annotations

import glob
import logging
from pathlib import Path

from ... import limits
from ..._imagesize import image_size
from ...errors import DataError, SourceError
from ..image import IMAGE_EXTENSIONS, read_image_bgr
from ._base import CORRUPT, Source

__all__ = ["ImageSource", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = IMAGE_EXTENSIONS


class ImageSource(Source):
    """``mode`` is ``image``, ``folder`` or ``glob``."""

    live = False

    def __init__(self, target, *, mode: str = "image", **kw):
        super().__init__(target, **kw)
        self.mode = self.kind = mode

    def _list(self) -> list[str]:
        if self.mode == "glob":
            return sorted(p for p in glob.glob(self.target, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if self.mode == "folder":
            return sorted(str(p) for p in Path(self.target).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return [self.target]

    def _open(self) -> None:
        self._files = self._list()
        if not self._files:
            raise SourceError(f"no images at {self.target}", hint=f"image types read: {', '.join(sorted(IMAGE_SUFFIXES))}")
        self._pos = 0

    def _read(self):
        if self._pos >= len(self._files):
            return None
        path = self._files[self._pos]
        self._pos += 1
        self._name = path
        size = image_size(path)
        if size is not None:
            try:
                limits.check_image_pixels(*size, where=path)
            except DataError as exc:
                logging.getLogger("edgerec.runtime.sources").warning("%s; skipped", exc.message)
                return CORRUPT
        try:  # the reader training uses: EXIF orientation, alpha on white, 16-bit scaled
            return read_image_bgr(path)
        except DataError:
            return CORRUPT

    def _rewind(self) -> bool:
        self._pos = 0
        return True

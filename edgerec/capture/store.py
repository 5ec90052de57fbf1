"""Writing frames without ever overwriting one, and stopping cleanly when the disk is full.

File names are ``<UTC time>_<host>_<counter>`` (``20260102-101530-250_pi4-kitchen_000012.jpg``): they sort by
time, two boards never collide (the host name is in them, for when their frames meet in one folder), and a
file is created with ``O_CREAT | O_EXCL``, so an existing file is never replaced, even by a second
process writing into the same folder. A write that fails half-way removes its partial file.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EdgerecError

__all__ = ["StorageFull", "check_label", "host_name", "frame_stem", "encode_image", "write_new", "free_bytes",
           "IMAGE_FORMATS"]

# format -> (extension, OpenCV encode parameters)
IMAGE_FORMATS: dict[str, tuple[str, list[int]]] = {
    "jpg": (".jpg", [1, 95]),  # cv2.IMWRITE_JPEG_QUALITY = 1: quality 95, close to lossless for training
    "png": (".png", [16, 3]),  # cv2.IMWRITE_PNG_COMPRESSION = 16: level 3, fast
}


class StorageFull(EdgerecError):
    """The disk is full (ENOSPC/EDQUOT) or under the free-space floor; what was written before is kept."""


def check_label(label: object) -> str:
    """``label`` if it can be a class folder name (no ``/``, ``\\``, ``..``, leading ``.`` or ``-``, empty)."""
    from ..devices.names import check_name  # standard library only: safe on a board

    try:
        return check_name(label, "label", error=ConfigError)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace(" on the board", ""),
                          hint="a label is one folder name, e.g. --label apple or --label 'red apple'") from None


def host_name() -> str:
    """This machine's name, reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:40] or "host"


def frame_stem(t: float, host: str, counter: int) -> str:
    ms = int((t % 1) * 1000)
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(t))}-{ms:03d}_{host}_{counter:06d}"


def encode_image(image: np.ndarray, fmt: str = "jpg") -> bytes:
    import cv2

    ext, params = IMAGE_FORMATS[fmt]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise EdgerecError(f"OpenCV could not encode a {image.shape} {image.dtype} frame as {ext}")
    return buf.tobytes()


def _is_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a file that must not exist yet (``FileExistsError`` if it does). On ENOSPC the partial
    file is removed and ``StorageFull`` raised; other ``OSError``s pass through after the same clean-up."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        path.unlink(missing_ok=True)
        if _is_full(exc):
            raise StorageFull(f"the disk holding {path.parent} is full (writing {path.name})",
                              hint="free some space or point the output at a larger disk; everything written before is kept") from exc
        raise


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def append_line(path: Path, line: str) -> None:
    """Append one line to an index file; ``StorageFull`` on ENOSPC."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as exc:
        if _is_full(exc):
            raise StorageFull(f"the disk holding {path.parent} is full (appending to {path.name})",
                              hint="free some space; everything written before is kept") from exc
        raise

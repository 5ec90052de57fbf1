"""An image's width and height from its header, without decoding it (standard library only).

The runtime reads images with OpenCV, which allocates the whole decoded picture before it can refuse
one; this lets a caller check ``edgerec.limits.MAX_IMAGE_PIXELS`` first. PNG, JPEG, GIF, BMP, WebP, TIFF
and PNM; ``None`` for anything else or a header too damaged to read (the decoder then reports it).

>>> image_size("photo.jpg")        # doctest: +SKIP
(4032, 3024)
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["image_size"]

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SEGMENTS = 512  # markers scanned before giving up on a JPEG header


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` as the header states it, or ``None`` when the format or header is not recognised."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return struct.unpack("<HH", head[6:10])
            if head.startswith(b"BM") and len(head) >= 26:
                if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
                    return struct.unpack("<HH", head[18:22])
                w, h = struct.unpack("<ii", head[18:26])
                return abs(w), abs(h)
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return _webp(head + f.read(32))
            if head.startswith(b"\xff\xd8"):
                return _jpeg(f)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff(f, head[:2] == b"II")
            if len(head) > 2 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
                return _pnm(head + f.read(992))
    except (OSError, struct.error, ValueError, IndexError):
        return None
    return None


def _webp(b: bytes) -> tuple[int, int] | None:
    kind = b[12:16]
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        b0, b1, b2, b3 = b[21:25]
        return 1 + (b0 | (b1 & 0x3F) << 8), 1 + (b1 >> 6 | b2 << 2 | (b3 & 0x0F) << 10)
    if kind == b"VP8X":
        return 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
    return None


def _jpeg(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(2)
    for _ in range(_JPEG_SEGMENTS):
        byte = f.read(1)
        while byte and byte != b"\xff":  # garbage between segments: skip to the next marker
            byte = f.read(1)
        while byte == b"\xff":  # fill bytes
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            continue
        if marker == 0xD9:  # end of image before a frame header
            return None
        length = struct.unpack(">H", f.read(2))[0]
        if marker in _SOF:
            _precision, h, w = struct.unpack(">BHH", f.read(5))
            return w, h
        f.seek(length - 2, 1)
    return None


def _tiff(f: BinaryIO, little: bool) -> tuple[int, int] | None:
    e = "<" if little else ">"
    f.seek(4)
    f.seek(struct.unpack(e + "I", f.read(4))[0])
    n = struct.unpack(e + "H", f.read(2))[0]
    size: dict[int, int] = {}
    for _ in range(min(n, 256)):
        tag, typ, _count, value = struct.unpack(e + "HHI4s", f.read(12))
        if tag in (256, 257):
            size[tag] = struct.unpack(e + "H", value[:2])[0] if typ == 3 else struct.unpack(e + "I", value)[0]
    return (size[256], size[257]) if len(size) == 2 else None


def _pnm(b: bytes) -> tuple[int, int] | None:
    tokens: list[int] = []
    for line in b[2:].split(b"\n"):
        line = line.split(b"#", 1)[0]
        for tok in line.split():
            tokens.append(int(tok))
            if len(tokens) == 2:
                return tokens[0], tokens[1]
    return None

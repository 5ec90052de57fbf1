"""Frame sources by URI, like jetson-inference's ``videoSource``: a table of kinds, one small module each.

==========================================  ===========  =====================================
URI                                         kind         notes
==========================================  ===========  =====================================
``0``, ``/dev/video0``, ``v4l2:///dev/video0``  v4l2     USB/V4L2 camera; live
``csi://0``                                 csi          Jetson nvarguscamerasrc (GStreamer)
``picam://0``                               picam        Raspberry Pi camera via picamera2
``rtsp://...``, ``http(s)://...``           stream       FFmpeg; live, reconnects
``gst://<pipeline>``                        gst          any GStreamer pipeline
``clip.mp4`` (or ``file://``)               video        in order, none dropped; ``loop``
``cat.jpg``                                 image        one still
``photos/``                                 folder       every image below, sorted
``photos/*.jpg``                            glob         matching images, sorted
==========================================  ===========  =====================================

A path that exists is always that file or folder, even when its name holds ``[``, ``*`` or ``?``, and a
``file://`` path is never a pattern; only a path that does not exist is tried as a glob.

>>> from edgerec.runtime import open_source
>>> with open_source("clip.mp4") as src:             # doctest: +SKIP
...     for frame in src:                             # (H, W, 3) uint8 BGR
...         ...
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import SourceError, suggest
from ..image import IMAGE_EXTENSIONS
from ._base import Frame, Source, SourceStats

__all__ = ["SOURCES", "ParsedURI", "parse_uri", "open_source", "Source", "Frame", "SourceStats"]

SOURCES: dict[str, str] = {
    "v4l2": "edgerec.runtime.sources.camera:V4L2Source",
    "csi": "edgerec.runtime.sources.csi:CSISource",
    "picam": "edgerec.runtime.sources.picam:PicameraSource",
    "stream": "edgerec.runtime.sources.stream:StreamSource",
    "gst": "edgerec.runtime.sources.gst:GStreamerSource",
    "video": "edgerec.runtime.sources.video:VideoFileSource",
    "image": "edgerec.runtime.sources.images:ImageSource",
    "folder": "edgerec.runtime.sources.images:ImageSource",
    "glob": "edgerec.runtime.sources.images:ImageSource",
}
_SCHEMES = {"v4l2": "v4l2", "csi": "csi", "picam": "picam", "rtsp": "stream", "rtsps": "stream",
            "http": "stream", "https": "stream", "rtmp": "stream", "gst": "gst", "file": None}
_IMAGE_SUFFIXES = IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ParsedURI:
    kind: str
    target: str  # what the source module opens: device, path, URL or pipeline


def parse_uri(uri: str | int) -> ParsedURI:
    """``"0"`` -> v4l2 ``0``; ``"csi://1"`` -> csi ``1``; ``"x.mp4"`` -> video; ... (see the module doc)."""
    uri = str(uri).strip()
    if not uri:
        raise SourceError("empty source URI", hint="e.g. --source 0, csi://0, clip.mp4, photos/")
    if re.fullmatch(r"\d+", uri) or re.fullmatch(r"/dev/video\d+", uri):
        return ParsedURI("v4l2", uri)
    m = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)", uri, re.S)
    if m:
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme not in _SCHEMES:
            raise SourceError(f"unknown source scheme '{scheme}://'{suggest(scheme, _SCHEMES)}")
        kind = _SCHEMES[scheme]
        if kind == "stream":
            return ParsedURI("stream", uri)
        if kind == "v4l2":
            return ParsedURI("v4l2", rest or "/dev/video0")
        if kind in ("csi", "picam"):
            if not re.fullmatch(r"\d*", rest):
                raise SourceError(f"{scheme}:// takes a camera number, e.g. {scheme}://0; got '{uri}'")
            return ParsedURI(kind, rest or "0")
        if kind == "gst":
            if not rest.strip():
                raise SourceError("gst:// needs a pipeline, e.g. gst://videotestsrc ! videoconvert ! appsink")
            return ParsedURI("gst", rest)
        uri = rest  # file://: a path, never a pattern
    p = Path(uri).expanduser()
    if not m and any(c in uri for c in "*?[") and not p.exists():
        return ParsedURI("glob", uri)
    if p.is_dir():
        return ParsedURI("folder", str(p))
    if p.suffix.lower() in _IMAGE_SUFFIXES:
        if not p.is_file():
            raise SourceError(f"image {uri} does not exist")
        return ParsedURI("image", str(p))
    if not p.is_file():
        raise SourceError(
            f"source '{uri}' is not a camera, URL, file or folder that exists",
            hint="cameras: 0, /dev/video0, csi://0, picam://0; streams: rtsp://, http://; or a video/image/folder/glob",
        )
    return ParsedURI("video", str(p))


def source_class(kind: str) -> type[Source]:
    module, cls = SOURCES[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def open_source(uri: str | int, *, width: int | None = None, height: int | None = None, fps: float | None = None,
                loop: bool = False, retries: int | None = None, **options) -> Source:
    """A ``Source`` for ``uri``, not yet started: use it as a context manager (``with``), which opens
    the device (errors here are ``SourceError``) and starts its reader thread."""
    parsed = parse_uri(uri)
    cls = source_class(parsed.kind)
    kw = dict(width=width, height=height, fps=fps, loop=loop, retries=retries, **options)
    if parsed.kind in ("image", "folder", "glob"):
        kw["mode"] = parsed.kind
    return cls(parsed.target, **kw)

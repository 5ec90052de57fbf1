"""Resource limits, named in one place: what a bundle, an archive, an image, a YAML file or a client may cost.

Each limit is far above what a real bundle, photo or config needs and far below what exhausts a
Raspberry Pi. They are module attributes read at call time, so a test (or an unusual deployment) can
change one with ``monkeypatch.setattr(edgerec.limits, "MAX_IMAGE_PIXELS", ...)``.

Thread counts follow one rule everywhere (``edgerec run``, ``bench``, ``export``, ``bundle verify``,
pipeline stages, ``Classifier.load`` and every backend): ``auto``, ``0`` and ``-1`` mean "the backend
chooses" (``None``), ``1 .. max_threads()`` is used as given, anything else is a ``ConfigError``.

>>> resolve_threads("auto"), resolve_threads(0), resolve_threads(-1), resolve_threads("2")
(None, None, None, 2)
"""

from __future__ import annotations

import os

from .errors import ConfigError, DataError

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_MANIFEST_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_INPUT_SIDE",
    "MAX_IMAGE_PIXELS",
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "MAX_THREADS",
    "HTTP_MAX_CONNECTIONS",
    "HTTP_IDLE_TIMEOUT_S",
    "max_threads",
    "resolve_threads",
    "check_image_pixels",
]

# Archives (``edgerec bundle unpack``, ``Classifier.load("x.edgerec")``): the sum of the members' sizes as
# their headers declare them (what extraction would write), and how many members there may be.
MAX_ARCHIVE_BYTES = 4 * 2**30
MAX_ARCHIVE_MEMBERS = 10_000
# edgerec.json: its size in bytes and how deeply its JSON may nest (a real one nests 4 levels).
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 32
# A model input side in pixels; real classifiers take 32 .. 1024.
MAX_INPUT_SIDE = 8192
# Decoded image size (width x height), shared by `edgerec data check`, training's reader and the runtime's
# image source: 100 MP is larger than any camera frame; decoded as RGB it is 300 MB.
MAX_IMAGE_PIXELS = 100_000_000
# YAML (configs, recipes, pipelines, inventories): the file size, and the nodes the document would have with
# every alias expanded (a "billion laughs" file is small but expands to billions).
MAX_YAML_BYTES = 1 * 2**20
MAX_YAML_NODES = 100_000
# Inference threads; max_threads() allows more on machines with more cores.
MAX_THREADS = 64
# `edgerec run --http`: concurrent client connections, and seconds a connection may stay silent
# (no request line, or a preview client that stops reading) before it is closed.
HTTP_MAX_CONNECTIONS = 32
HTTP_IDLE_TIMEOUT_S = 15.0

_AUTO = ("auto", "default", "0", "-1")


def max_threads() -> int:
    """The largest thread count accepted here: ``MAX_THREADS``, or the core count where that is higher."""
    return max(MAX_THREADS, os.cpu_count() or 1)


def resolve_threads(value: int | str | None, *, what: str = "--threads") -> int | None:
    """``None`` for auto (``None``, ``"auto"``, ``0``, ``-1``), else an int in ``1 .. max_threads()``.

    ``ConfigError`` names ``what`` for anything else, so every verb reports a bad value the same way.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a thread count or 'auto', got {value!r}")
    text = str(value).strip().lower()
    if text in _AUTO:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"{what}: expected a thread count or 'auto', got {value!r}",
                          hint="e.g. --threads 2; auto, 0 and -1 all let the backend choose") from None
    top = max_threads()
    if not 1 <= n <= top:
        raise ConfigError(f"{what} {n} is out of range (1..{top}, or auto)",
                          hint="use about as many threads as the board has cores; auto, 0 and -1 let the backend choose")
    return n


def check_image_pixels(width: int, height: int, *, where: str = "image") -> None:
    """``DataError`` when a ``width`` x ``height`` image is larger than ``MAX_IMAGE_PIXELS``.

    Call it with the size from the file's header, before decoding (the decode is what allocates).
    """
    if width <= 0 or height <= 0:
        raise DataError(f"{where}: impossible image size {width}x{height}", hint="the file is corrupt; replace it")
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{where} is {width}x{height} = {width * height / 1e6:.0f} MP, over the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit",
            hint="downscale the file (e.g. to 4000 px on the long side); decoding it would take "
                 f"{width * height * 3 / 2**30:.1f} GB",
        )

"""Built-in datasets written as ImageFolders: real handwritten digits and generated shapes.

``write_digits`` writes scikit-learn's handwritten digits (1797 scans of 8x8 pixels from 43 writers, UCI
"Optical Recognition of Handwritten Digits"), upscaled, as dark ink on white paper so a camera pointed at
a digit written on paper sees what the model was trained on.

``write_synth`` draws coloured shapes (class = colour + shape + fill style) at a random position, scale and
rotation, with colour jitter, a random tinted background with a gradient and pixel noise, and a few
distractor lines. It is deterministic per seed: image ``i`` of class ``k`` depends only on ``(seed, k, i)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["write_digits", "write_synth", "synth_class_names", "SYNTH_SHAPES", "SYNTH_COLOURS", "SYNTH_STYLES"]

SYNTH_SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "arrow")
SYNTH_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 20),
    "magenta": (210, 40, 200),
    "cyan": (20, 200, 210),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
SYNTH_STYLES = ("filled", "outline", "striped")
MAX_SYNTH_CLASSES = len(SYNTH_SHAPES) * len(SYNTH_COLOURS) * len(SYNTH_STYLES)


def _prepare_out(out: str | Path, exist_ok: bool) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder", hint="choose another output path")
    if out.is_dir() and any(out.iterdir()) and not exist_ok:
        raise DataError(f"{out} already exists and is not empty",
                        hint="choose a new folder, or pass exist_ok=True (CLI: --force) to write over it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise DataError(f"image size must be a whole number of pixels from 8 to 4096, got {size!r}",
                        hint="e.g. size=32")
    return int(size)


def write_digits(out: str | Path, *, size: int = 32, seed: int = 0, per_class: int | None = None,
                 exist_ok: bool = False) -> Path:
    """Write scikit-learn's 1797 handwritten digits as ``out/<digit>/<nnnn>.png`` RGB images.

    ``per_class`` keeps a seeded random subset of that many images per digit (all when None).
    Returns ``out``.

    >>> write_digits("digits", size=32)        # doctest: +SKIP
    PosixPath('digits')
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    size = _check_size(size)
    if per_class is not None and per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    out = _prepare_out(out, exist_ok)
    digits = load_digits()
    images = digits.images  # (1797, 8, 8) float in 0..16, 16 = ink
    target = digits.target
    rng = np.random.default_rng(seed)
    for digit in range(10):
        idx = np.flatnonzero(target == digit)
        if per_class is not None and per_class < len(idx):
            idx = np.sort(rng.choice(idx, size=per_class, replace=False))
        folder = out / str(digit)
        folder.mkdir(exist_ok=True)
        for i in idx:
            paper = (255.0 - images[i] * (255.0 / 16.0)).round().astype(np.uint8)  # dark ink on white
            im = Image.fromarray(paper, mode="L").resize((size, size), Image.Resampling.BICUBIC)
            im.convert("RGB").save(folder / f"{i:04d}.png", optimize=False, compress_level=1)
    return out


def synth_class_names(classes: int) -> list[str]:
    """Names of the first ``classes`` synthetic classes, e.g. ``["red_circle", "green_square", ...]``."""
    names = []
    colours = list(SYNTH_COLOURS)
    for k in range(classes):
        shape = SYNTH_SHAPES[k % len(SYNTH_SHAPES)]
        # walk colours so neighbouring classes differ in both shape and colour
        colour = colours[(k + k // len(SYNTH_SHAPES)) % len(colours)]
        style = SYNTH_STYLES[k // (len(SYNTH_SHAPES) * len(colours))]
        names.append(f"{colour}_{shape}" + ("" if style == "filled" else f"_{style}"))
    return names


def _shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon of ``shape`` centred at (cx, cy) with circumradius ``r``, rotated by ``angle`` radians."""
    if shape == "circle":
        pts = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
    elif shape == "square":
        pts = [(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)]
    elif shape == "triangle":
        pts = [(math.cos(t), math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "star":
        pts = [((1.0 if j % 2 == 0 else 0.42) * math.cos(-math.pi / 2 + j * math.pi / 5),
                (1.0 if j % 2 == 0 else 0.42) * math.sin(-math.pi / 2 + j * math.pi / 5)) for j in range(10)]
    elif shape == "cross":
        a, b = 0.3, 0.95
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    elif shape == "diamond":
        pts = [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]
    elif shape == "hexagon":
        pts = [(math.cos(j * math.pi / 3), math.sin(j * math.pi / 3)) for j in range(6)]
    elif shape == "arrow":
        pts = [(-0.9, -0.25), (0.2, -0.25), (0.2, -0.6), (0.95, 0), (0.2, 0.6), (0.2, 0.25), (-0.9, 0.25)]
    else:  # pragma: no cover - names come from SYNTH_SHAPES
        raise ValueError(shape)
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _synth_image(k: int, i: int, size: int, seed: int, n_classes: int):
    """Image ``i`` of class ``k``: a PIL RGB image of ``size`` x ``size``."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, k, i])
    colours = list(SYNTH_COLOURS)
    shape = SYNTH_SHAPES[k % len(SYNTH_SHAPES)]
    colour = np.array(SYNTH_COLOURS[colours[(k + k // len(SYNTH_SHAPES)) % len(colours)]], dtype=np.float64)
    style = SYNTH_STYLES[k // (len(SYNTH_SHAPES) * len(colours))]

    ss = 2  # draw at 2x and downsample: anti-aliased edges
    n = size * ss
    # background: a random, fairly muted tint with a linear gradient, far enough from the shape colour
    for _ in range(8):
        base = rng.uniform(60, 200, size=3)
        if np.abs(base - colour).sum() > 150:
            break
    gx, gy = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
    theta = rng.uniform(0, 2 * math.pi)
    grad = (gx * math.cos(theta) + gy * math.sin(theta))[..., None] * rng.uniform(10, 40)
    bg = np.clip(base + grad, 0, 255).astype(np.uint8)
    im = Image.fromarray(bg, mode="RGB")
    draw = ImageDraw.Draw(im)

    # distractor lines in a neutral grey, so they cannot stand in for the class colour
    for _ in range(int(rng.integers(0, 3))):
        g = int(rng.integers(40, 220))
        xy = [tuple(rng.uniform(0, n, size=2)), tuple(rng.uniform(0, n, size=2))]
        draw.line(xy, fill=(g, g, g), width=max(1, n // 64))

    r = rng.uniform(0.22, 0.42) * n
    cx, cy = rng.uniform(r * 0.8, n - r * 0.8, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    fill = tuple(int(v) for v in np.clip(colour + rng.normal(0, 12, size=3), 0, 255))
    pts = _shape_points(shape, cx, cy, r, angle)
    width = max(2, int(r * 0.18))
    if style == "filled":
        draw.polygon(pts, fill=fill)
    elif style == "outline":
        draw.line(pts + [pts[0]], fill=fill, width=width, joint="curve")
    else:  # striped: filled with the colour, then background-coloured stripes across it
        mask = Image.new("L", (n, n), 0)
        ImageDraw.Draw(mask).polygon(pts, fill=255)
        stripes = Image.new("RGB", (n, n), fill)
        sd = ImageDraw.Draw(stripes)
        step = max(4, int(r * 0.35))
        bgc = tuple(int(v) for v in base)
        for off in range(-n, 2 * n, step):
            sd.line([(off, 0), (off + n, n)], fill=bgc, width=max(1, step // 2))
        im.paste(stripes, (0, 0), mask)
        draw.line(pts + [pts[0]], fill=fill, width=max(1, width // 2))

    im = im.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(im, dtype=np.float32) + rng.normal(0, rng.uniform(2, 10), size=(size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="RGB")


def write_synth(out: str | Path, *, classes: int = 4, per_class: int = 50, size: int = 64, seed: int = 0,
                exist_ok: bool = False) -> Path:
    """Write a generated shapes dataset as ``out/<colour>_<shape>[_style]/<nnnn>.png``; returns ``out``.

    Any class count from 2 to ``MAX_SYNTH_CLASSES`` (192) and any size from 8 px; deterministic per ``seed``.

    >>> write_synth("shapes", classes=6, per_class=100, size=64, seed=1)   # doctest: +SKIP
    PosixPath('shapes')
    """
    size = _check_size(size)
    if not isinstance(classes, (int, np.integer)) or not 2 <= classes <= MAX_SYNTH_CLASSES:
        raise DataError(f"synth supports 2 to {MAX_SYNTH_CLASSES} classes, got {classes!r}",
                        hint="a classifier needs at least 2 classes")
    if not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class!r}")
    out = _prepare_out(out, exist_ok)
    for k, name in enumerate(synth_class_names(classes)):
        folder = out / name
        folder.mkdir(exist_ok=True)
        for i in range(per_class):
            _synth_image(k, i, size, seed, classes).save(folder / f"{i:04d}.png", compress_level=1)
    return out

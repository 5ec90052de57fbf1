"""A picture of a dataset: one row per class, a few random images each, the class name and count beside.

Looking at it is the quickest way to catch a mislabelled folder, images rotated by a camera, or a class
that differs from the others in background rather than content.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import Dataset

__all__ = ["write_montage"]

_LABEL_W = 150  # pixels for "class (count)" at the left of each row


def write_montage(dataset: Dataset, out: str | Path, *, per_class: int = 8, cell: int = 64, seed: int = 0,
                  max_classes: int = 50) -> Path:
    """Write a PNG grid of ``per_class`` random images for each class (first ``max_classes`` classes).

    Images are scaled (keeping their aspect ratio) to fit ``cell`` x ``cell`` squares; a file that fails to read shows as
    a red cell. Returns ``out``.

    >>> write_montage(load_dataset("digits"), "digits.png")   # doctest: +SKIP
    """
    from PIL import Image, ImageDraw

    from ..errors import DataError
    from .images import read_image

    out = Path(out)
    rng = np.random.default_rng(seed)
    classes = dataset.classes[:max_classes]
    counts = dataset.counts()
    by_class: dict[int, list[int]] = {k: [] for k in range(len(classes))}
    for i, s in enumerate(dataset.samples):
        if s.labels and s.labels[0] < len(classes):
            by_class[s.labels[0]].append(i)
    canvas = Image.new("RGB", (_LABEL_W + per_class * (cell + 2), len(classes) * (cell + 2) + 2), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, k in enumerate(range(len(classes))):
        y = 2 + row * (cell + 2)
        draw.text((4, y + cell // 2 - 12), classes[k][:22], fill=(0, 0, 0))
        draw.text((4, y + cell // 2 + 2), f"{counts[classes[k]]} images", fill=(90, 90, 90))
        members = by_class[k]
        pick = rng.choice(members, size=min(per_class, len(members)), replace=False) if members else []
        for col, i in enumerate(pick):
            x = _LABEL_W + col * (cell + 2)
            try:
                im = Image.fromarray(read_image(dataset.samples[int(i)].path))
            except DataError:
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(220, 40, 40))
                continue
            scale = cell / max(im.width, im.height)  # fit the cell, upscaling small images too
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)
            canvas.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out

"""Small files for data tests: unique images (no accidental duplicates), broken ones on purpose."""

from pathlib import Path

import numpy as np
from PIL import Image

_counter = iter(range(10**9))


def write_image(path: Path, *, size=(8, 8), mode: str = "RGB", value: int | None = None) -> Path:
    """A small image whose pixels differ from every other one written here (unless ``value`` is given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(next(_counter) if value is None else value)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path)
    return path


def make_folder(root: Path, counts: dict[str, int], *, split: str | None = None, size=(8, 8)) -> Path:
    """``root[/split]/<class>/<i>.png`` with ``counts[class]`` images each."""
    base = Path(root) / split if split else Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for cls, n in counts.items():
        (base / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(base / cls / f"{i:03d}.png", size=size)
    return Path(root)


def truncate(path: Path) -> Path:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    return Path(path)

"""Realistic inputs for a benchmark: the bundle's check images, or a labelled folder (``--data``).

Zeros are not realistic: int8 kernels, denormals and early-exit paths can all run faster on constant
input, so the timed runs cycle through real pictures prepared exactly as the runtime prepares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Artifact, Manifest
from ..errors import BundleError, DataError
from ..runtime.image import IMAGE_EXTENSIONS, read_image_bgr

__all__ = ["IMAGE_SUFFIXES", "BenchImages", "load_images", "prepare_tensors"]

_SPLITS = {"train", "val", "test"}
IMAGE_SUFFIXES = tuple(sorted(IMAGE_EXTENSIONS))


@dataclass
class BenchImages:
    """BGR frames as a camera would deliver them, with labels (indices into the manifest's labels) when known."""

    frames: list[np.ndarray]
    labels: list[int] | None
    source: str  # "check_images" | "data:<dir>"

    def __len__(self) -> int:
        return len(self.frames)


def _read_bgr(path: Path) -> np.ndarray:
    return read_image_bgr(path)  # the runtime's reader: the frames edgerec run would give the model


def load_images(root: Path, manifest: Manifest, data: str | Path | None = None, *, limit: int | None = None) -> BenchImages:
    """Check images of the bundle at ``root``, or every image of the labelled folder ``data``.

    ``data`` must hold one sub-folder per class, named like the bundle's labels; a pre-split dataset root
    (``train/ val/ test/``) is read from ``test/`` (else ``val/``).
    """
    if data is None:
        if not manifest.check_images:
            raise BundleError(
                f"bundle '{manifest.name}' has no check_images to benchmark with",
                hint="pass a folder of pictures with --data DIR (one sub-folder per class)",
            )
        paths = [root / p for p in manifest.check_images][:limit]
        return BenchImages([_read_bgr(p) for p in paths], None, "check_images")
    data = Path(data)
    if not data.is_dir():
        raise DataError(f"--data folder not found: {data}", hint="pass a folder with one sub-folder per class")
    index = {name: i for i, name in enumerate(manifest.labels)}
    frames, labels = [], []
    subdirs = {d.name for d in data.iterdir() if d.is_dir()}
    if subdirs and subdirs <= _SPLITS and not subdirs & set(index):
        # a pre-split dataset root: measure on its held-out part
        data = data / ("test" if "test" in subdirs else "val" if "val" in subdirs else "train")
    classes = sorted(d for d in data.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{data} has no class sub-folders", hint="lay it out as DIR/<label>/<image>")
    unknown = [d.name for d in classes if d.name not in index]
    if unknown:
        raise DataError(
            f"{data}: class folder(s) {', '.join(unknown[:5])} are not labels of bundle '{manifest.name}'",
            hint=f"the bundle's labels are: {', '.join(manifest.labels[:20])}",
        )
    for d in classes:
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                frames.append(_read_bgr(p))
                labels.append(index[d.name])
    if not frames:
        raise DataError(f"{data} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if limit:
        frames, labels = frames[:limit], labels[:limit]
    return BenchImages(frames, labels, f"data:{data}")


def prepare_tensors(frames: list[np.ndarray], manifest: Manifest, artifact: Artifact) -> list[np.ndarray]:
    """Each frame as the artifact's (1, ...) input tensor, exactly as the runtime prepares it."""
    from ..runtime.preprocess import Preprocessor

    pre = Preprocessor(manifest.input, artifact, batch=1)
    return [pre(f).copy() for f in frames]

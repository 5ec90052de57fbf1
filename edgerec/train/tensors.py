"""Images decoded once into uint8, read and resized by the runtime's own functions.

Training epochs then take batches from it: no per-step decoding, no DataLoader workers. In memory
(``decode_images``) a 10 000-image set at 224 px is 1.5 GB per process; larger sets and torchrun use the decoded
cache on disk (``edgerec.train.cache``, filled by ``decode_into``), shared by every process on the machine.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..bundle import InputSpec

__all__ = ["Prepared", "ImageTensors", "resize_image", "decode_images", "decode_into", "cat_images", "targets_for", "choose_resize_mode", "resolve_resize_mode"]


@dataclass
class ImageTensors:
    """``images`` uint8 (N, 3, H, W) RGB; ``targets`` int64 (N,) or float32 (N, C) for multi-label."""

    images: "object"
    targets: "object"
    paths: list[Path]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx) -> "ImageTensors":
        import torch

        idx = np.asarray(idx, dtype=np.int64)
        idx_t = torch.as_tensor(idx)
        if hasattr(self.images, "subset"):
            images = self.images.subset(idx)
        elif len(idx) and idx[-1] - idx[0] + 1 == len(idx) and bool(np.all(np.diff(idx) == 1)):
            images = self.images[int(idx[0]) : int(idx[-1]) + 1]  # a run of rows: a view, the pixels are not copied
        else:
            images = self.images[idx_t]
        return ImageTensors(images, self.targets[idx_t], [self.paths[i] for i in idx_t.tolist()])


@dataclass
class Prepared:
    """Decoded tensors of a dataset split, ready for training (``runner.prepare_data`` builds it, ``phases`` trains on it)."""

    dataset: object
    split: object
    classes: tuple[str, ...]
    task: str
    train: object
    val: object
    test: object
    input_spec: InputSpec
    resize_reason: str = ""  # why input_spec.resize_mode (resize_mode: auto decides from the images' aspect ratios)


def cat_images(parts):
    """torch.cat for in-memory images; one index map over the same file for the disk cache's."""
    import torch

    if all(hasattr(p, "subset") for p in parts):
        from .cache import DiskImages

        return DiskImages.cat(parts)
    return torch.cat([p if isinstance(p, torch.Tensor) else p[:] for p in parts])


def resize_image(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB of any size -> the model-size RGB image, per ``spec`` (resize mode, interpolation,
    letterbox padding): ``edgerec.runtime.image.model_image``, the runtime's own function."""
    import cv2

    from ..runtime.image import model_image

    return cv2.cvtColor(model_image(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), spec), cv2.COLOR_BGR2RGB)


ELONGATED = 2.0  # long side / short side beyond which a centre crop keeps less than half of the picture
ELONGATED_SHARE = 0.25  # share of such training images beyond which ``auto`` letterboxes instead
_SAMPLE = 2000  # image headers read to decide (a seeded sample of larger sets)


def choose_resize_mode(sizes: Sequence[tuple[int, int]]) -> tuple[str, str]:
    """``resize_mode: auto``: ``(mode, reason)`` from the training images' upright ``(width, height)``.

    ``center_crop`` normally: it keeps proportions on camera frames of any aspect ratio (4:3, 16:9), as
    torchvision, timm and Ultralytics evaluate (short side + centre crop), and on square training images it
    is the same as ``squash``. When more than a quarter of the images are longer than 2:1, a centre crop would
    cut away more than half of each of them: ``letterbox`` keeps the whole picture, in proportion, padded.
    A set of portrait and landscape pictures mixed is centre-cropped (each to its own central square).

    >>> choose_resize_mode([(32, 32)] * 10)[0]
    'center_crop'
    >>> choose_resize_mode([(300, 100)] * 4 + [(100, 100)] * 6)[0]
    'letterbox'
    """
    if not sizes:
        return "center_crop", "no image size could be read; center_crop keeps proportions on camera frames"
    a = np.array([w / h for w, h in sizes], np.float64)
    long_short = np.maximum(a, 1.0 / a)
    elongated = float(np.mean(long_short > ELONGATED))
    lo, med, hi = np.percentile(a, [5, 50, 95])
    spread = f"width/height {lo:.2f}..{hi:.2f}, median {med:.2f}, over {len(a)} training images"
    if elongated > ELONGATED_SHARE:
        return "letterbox", (f"auto: {elongated:.0%} of the training images are longer than {ELONGATED:g}:1, where a centre "
                             f"crop would keep less than half of the picture; letterbox keeps all of it, in proportion ({spread})")
    if np.all(np.abs(long_short - 1.0) <= 0.02):
        return "center_crop", (f"auto: the training images are square ({len(a)} read), so center_crop sees them whole, "
                               "as squash would, and keeps proportions on 4:3 and 16:9 camera frames")
    mixed = " (portrait and landscape mixed: each is cropped to its own centre)" if np.mean(a < 0.9) >= 0.1 and np.mean(a > 1.1) >= 0.1 else ""
    return "center_crop", (f"auto: center_crop keeps proportions on camera frames of any aspect ratio ({spread}){mixed}; "
                           f"{elongated:.0%} of the images are longer than {ELONGATED:g}:1")


def resolve_resize_mode(mode: str, paths: Sequence[Path], *, seed: int = 0) -> tuple[str, str]:
    """``(mode, reason)``: ``auto`` decided from the headers of (a sample of) ``paths``; any other mode as given."""
    if mode != "auto":
        return mode, f"resize_mode {mode} set in the training configuration"
    from ..data.images import upright_size

    paths = list(paths)
    if len(paths) > _SAMPLE:
        pick = np.random.default_rng(seed).choice(len(paths), _SAMPLE, replace=False)
        paths = [paths[i] for i in sorted(pick)]
    sizes = [s for s in map(upright_size, paths) if s is not None and s[0] > 0 and s[1] > 0]
    return choose_resize_mode(sizes)


def targets_for(labels: Sequence[tuple[int, ...]], num_classes: int, multi_label: bool):
    import torch

    if multi_label:
        t = torch.zeros(len(labels), num_classes, dtype=torch.float32)
        for i, lab in enumerate(labels):
            t[i, list(lab)] = 1.0
        return t
    return torch.tensor([lab[0] for lab in labels], dtype=torch.int64)


def decode_into(paths: Sequence[Path], spec: InputSpec, *, out: np.ndarray, workers: int | None = None) -> None:
    """Fill ``out`` (uint8 (N, 3, H, W), ``spec.color_order``): each file read and resized exactly as the runtime does.

    ``edgerec.runtime.image``: the OpenCV reader (EXIF orientation, alpha on white, 16-bit), then
    ``model_image`` (resize mode, interpolation, padding). ``workers`` threads (None: every core; 0: this
    thread); OpenCV releases the GIL, so threads suffice.
    """
    import cv2

    from ..runtime.image import model_image, read_image_bgr

    rgb = str(spec.color_order).upper() == "RGB"
    h, w = int(spec.height), int(spec.width)

    def one(i):
        img = model_image(read_image_bgr(paths[i]), spec, out=np.empty((h, w, 3), np.uint8))
        if rgb:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # decoded BGR (cv2 is ~20x numpy's [..., ::-1])
        out[i] = img.transpose(2, 0, 1)

    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers > 1 and len(paths) > 1:
        with ThreadPoolExecutor(min(workers, len(paths))) as pool:
            list(pool.map(one, range(len(paths))))
    else:
        for i in range(len(paths)):
            one(i)


def decode_images(paths: Sequence[Path], spec: InputSpec, *, workers: int | None = None, progress: bool = False,
                  desc="decode"):
    """uint8 tensor (N, 3, H, W) in memory, in ``spec.color_order``: ``decode_into`` in chunks, with a progress bar."""
    import torch
    from tqdm.auto import tqdm

    out = np.empty((len(paths), 3, int(spec.height), int(spec.width)), np.uint8)
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress or len(paths) < 500, leave=False)
    step = 256
    for s in range(0, len(paths), step):
        decode_into(paths[s : s + step], spec, out=out[s : s + step], workers=workers)
        bar.update(min(step, len(paths) - s))
    bar.close()
    return torch.from_numpy(out)

"""Images decoded once into uint8 tensors, read and resized by the runtime's own functions.

Training epochs then read batches straight from memory: no per-step decoding, no DataLoader workers.
A 10 000-image set at 224 px is 1.5 GB of uint8; larger sets should lower ``img_size`` or subsample.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..bundle import InputSpec

__all__ = ["ImageTensors", "resize_image", "decode_images", "targets_for", "choose_resize_mode", "resolve_resize_mode"]


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

        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return ImageTensors(self.images[idx_t], self.targets[idx_t], [self.paths[i] for i in idx_t.tolist()])


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


def decode_images(paths: Sequence[Path], spec: InputSpec, *, workers: int = 0, progress: bool = False, desc="decode"):
    """uint8 tensor (N, 3, H, W) in ``spec.color_order``, each file read and resized exactly as the runtime does.

    ``edgerec.runtime.image``: the OpenCV reader (EXIF orientation, alpha on white, 16-bit), then
    ``model_image`` (resize mode, interpolation, padding) straight into the batch. OpenCV releases the GIL,
    so threads suffice.
    """
    import cv2
    import torch
    from tqdm.auto import tqdm

    from ..runtime.image import model_image, read_image_bgr

    out = np.empty((len(paths), int(spec.height), int(spec.width), 3), np.uint8)
    rgb = str(spec.color_order).upper() == "RGB"

    def one(i):
        model_image(read_image_bgr(paths[i]), spec, out=out[i])
        if rgb:
            cv2.cvtColor(out[i], cv2.COLOR_BGR2RGB, dst=out[i])  # decoded BGR (cv2 is ~20x numpy's [..., ::-1])

    it = range(len(paths))
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress or len(paths) < 500, leave=False)
    if workers > 0:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(one, it):
                bar.update()
    else:
        for i in it:
            one(i)
            bar.update()
    bar.close()
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

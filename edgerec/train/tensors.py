"""Images decoded once into uint8 tensors, resized the way the deployed model will see them.

Training epochs then read batches straight from memory: no per-step decoding, no DataLoader workers.
A 10 000-image set at 224 px is 1.5 GB of uint8; larger sets should lower ``img_size`` or subsample.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError

__all__ = ["ImageTensors", "resize_image", "decode_images", "targets_for"]


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


def resize_image(img: np.ndarray, size: int, mode: str = "squash") -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 per ``InputSpec.resize_mode`` (bilinear)."""
    import cv2

    h, w = img.shape[:2]
    if mode == "squash":
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    if mode == "center_crop":
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        top, left = (nh - size) // 2, (nw - size) // 2
        return np.ascontiguousarray(img[top : top + size, left : left + size])
    if mode == "letterbox":
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        out = np.zeros((size, size, 3), np.uint8)
        top, left = (size - nh) // 2, (size - nw) // 2
        out[top : top + nh, left : left + nw] = img
        return out
    raise DataError(f"unknown resize mode '{mode}'", hint="use squash, center_crop or letterbox")


def targets_for(labels: Sequence[tuple[int, ...]], num_classes: int, multi_label: bool):
    import torch

    if multi_label:
        t = torch.zeros(len(labels), num_classes, dtype=torch.float32)
        for i, lab in enumerate(labels):
            t[i, list(lab)] = 1.0
        return t
    return torch.tensor([lab[0] for lab in labels], dtype=torch.int64)


def decode_images(paths: Sequence[Path], size: int, mode: str, *, workers: int = 0, progress: bool = False, desc="decode"):
    """uint8 tensor (N, 3, size, size); OpenCV and Pillow release the GIL, so threads suffice."""
    import torch
    from tqdm.auto import tqdm

    from ..data.images import read_image

    out = np.empty((len(paths), size, size, 3), np.uint8)

    def one(i):
        out[i] = resize_image(read_image(paths[i]), size, mode)

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

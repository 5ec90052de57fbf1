"""Helpers for quantization and TFLite tests: a tiny conv-bn-relu classifier and digits as RGB pictures."""

from __future__ import annotations

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 16


def digits_images(size: int = SIZE, limit: int | None = None):
    """scikit-learn's 8x8 digits as (N, size, size, 3) uint8 RGB pictures and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    rep = size // 8
    images = np.kron(images, np.ones((1, rep, rep), dtype=np.uint8))
    rgb = np.repeat(images[..., None], 3, axis=-1)
    labels = d.target.astype(np.int64)
    if limit is not None:
        rgb, labels = rgb[:limit], labels[:limit]
    return rgb, labels


def normalise(images_u8: np.ndarray):
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float tensor, ImageNet mean/std."""
    import torch

    x = images_u8.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def tiny_net(num_classes: int = 10, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def train_float(model, x, y, *, steps: int = 150, lr: float = 0.01, batch: int = 64, seed: int = 0):
    """A few SGD steps; returns the model in eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(logits, y) -> float:
    return float((logits.argmax(1) == y).float().mean())

"""The training step, one epoch, prediction, schedules and losses.

Batches are sliced from uint8 tensors in memory, augmented on the training device in a few batched ops,
normalised there, and fed channels-last; on CUDA with mixed precision. The loss is read back once per
epoch (an accumulated device tensor), so there is no host sync per step.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["to_device_if_fits", "Normalizer", "StepRunner", "cosine_with_warmup", "make_loss", "predict", "set_bn_momentum"]


class Normalizer:
    """uint8 NCHW on the host -> float, normalised, on ``device`` (optionally augmented in between)."""

    def __init__(self, mean, std, device, *, channels_last: bool = False, augment: Callable | None = None):
        import torch

        self.device = device
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.channels_last = channels_last
        self.augment = augment

    def __call__(self, images_u8, *, train: bool = False):
        import torch

        x = images_u8.to(self.device, non_blocking=True).float().div_(255.0)
        if train and self.augment is not None:
            x = self.augment(x)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def to_device_if_fits(tensor, device, *, max_bytes: int = 2 << 30):
    """The whole uint8 image set on the GPU when it is small enough (no host copy per step), else as is."""
    if device.type != "cuda" or tensor.numel() * tensor.element_size() > max_bytes:
        return tensor
    return tensor.to(device)


def cosine_with_warmup(total_steps: int, warmup_steps: int, *, floor: float = 0.0):
    """LambdaLR factor: linear warm-up to 1, then cosine to ``floor``."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps - 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def make_loss(task: str, *, label_smoothing: float = 0.0, class_weight=None, pos_weight=None):
    import torch

    if task == "multi_label":
        return torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    return torch.nn.CrossEntropyLoss(weight=class_weight, label_smoothing=label_smoothing)


class DistillLoss:
    """``(1 - share) * label_loss + share * T² · KL(teacher ‖ student)`` at temperature T (Hinton et al., 2015).

    Single-label: softmax over classes. Multi-label: each output is its own yes/no, so the soft targets are the
    teacher's sigmoids and the divergence is their binary cross-entropy. Called as ``loss(student, y, teacher)``.
    """

    def __init__(self, label_loss, task: str, *, share: float, temperature: float):
        self.label_loss, self.task, self.share, self.t = label_loss, task, float(share), float(temperature)

    def __call__(self, student, y, teacher):
        import torch.nn.functional as F

        t = self.t
        if self.task == "multi_label":
            soft = F.binary_cross_entropy_with_logits(student / t, (teacher / t).sigmoid())
        else:
            soft = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                            log_target=True)
        soft = soft * (t * t)
        if self.share >= 1.0:
            return soft
        return (1.0 - self.share) * self.label_loss(student, y) + self.share * soft


def set_bn_momentum(model, momentum: float) -> int:
    """Override every BatchNorm's momentum (torchvision's MobileNetV3 uses 0.01, too slow for short runs)."""
    import torch

    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
            n += 1
    return n


@dataclass
class EpochResult:
    loss: float
    steps: int
    images: int


class StepRunner:
    """Owns model, optimiser, scheduler, scaler; ``run_epoch`` does one pass over the given sample order."""

    def __init__(self, model, optimizer, scheduler, loss_fn, prep: Normalizer, *, amp: bool = False, forward=None,
                 teacher=None):
        """``teacher``: a frozen model whose logits on the same augmented batch go to ``loss_fn`` as a third
        argument (``DistillLoss``)."""
        import torch

        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loss_fn = loss_fn
        self.prep = prep
        self.device = prep.device
        self.amp = bool(amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.forward = forward or model
        self.teacher = teacher

    def step(self, xb_u8, yb) -> "object":
        import torch

        x = self.prep(xb_u8, train=True)
        y = yb.to(self.device, non_blocking=True)
        ctx = torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()
        with ctx:
            if self.teacher is None:
                loss = self.loss_fn(self.forward(x), y)
            else:
                with torch.no_grad():
                    soft = self.teacher(x)
                loss = self.loss_fn(self.forward(x), y, soft)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()

    def run_epoch(self, images, targets, order, batch_size: int, *, max_steps=None, bar=None, before_step=None) -> EpochResult:
        import torch

        total = torch.zeros((), device=self.device)
        steps = seen = 0
        n = len(order)
        # drop a last batch of 1: BatchNorm cannot train on it
        starts = [s for s in range(0, n, batch_size) if min(batch_size, n - s) > 1 or s == 0]
        if max_steps is not None:
            starts = starts[:max_steps]
        batches = [order[s : s + batch_size] for s in starts]
        # images from the disk cache are read a few batches ahead on a thread; in-memory ones are indexed
        reads = images.prefetch(batches) if hasattr(images, "prefetch") else (images[idx] for idx in batches)
        for idx, xb in zip(batches, reads):
            if before_step is not None:
                before_step(steps)
            yb = targets[idx]
            if self.device.type == "cuda" and xb.device.type == "cpu":
                xb, yb = xb.pin_memory(), yb.pin_memory()  # lets the copy overlap with compute
            loss = self.step(xb, yb)
            total += loss * len(idx)
            steps += 1
            seen += len(idx)
            if bar is not None:
                bar.update(len(idx))
        return EpochResult(float(total.item()) / max(1, seen), steps, seen)


def predict(forward, images_u8, prep: Normalizer, *, batch_size: int = 256, amp: bool = False) -> np.ndarray:
    """Logits (N, C) as float32 numpy; ``forward`` is an eval-mode module or a converted int8 graph."""
    import torch

    outs = []
    use_amp = amp and prep.device.type == "cuda"
    with torch.inference_mode():
        for s in range(0, len(images_u8), batch_size):
            x = prep(images_u8[s : s + batch_size])
            ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
            with ctx:
                outs.append(forward(x).float().cpu())
    if not outs:
        return np.zeros((0, 0), np.float32)
    return torch.cat(outs).numpy()

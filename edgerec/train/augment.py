"""Per-sample random augmentation of a whole batch in a handful of tensor ops.

torchvision's transforms v2 draw one set of random parameters per call, so a per-sample pipeline runs
in a DataLoader image by image. Here every geometric transform (RandomResizedCrop, RandomAffine translate,
RandomRotation, RandomHorizontalFlip) is folded into one affine matrix per sample and applied with a single
``grid_sample``; ColorJitter, RandomGrayscale and GaussianBlur are broadcast over the batch with per-sample
factors. Same parameter meanings as the v2 transforms of those names, one pass over memory, works on
CPU and GPU alike.

>>> aug = BatchAugment(AugmentConfig(rotation=15))                       # doctest: +SKIP
>>> x = aug(images_uint8.float() / 255)   # (N, 3, H, W) in [0, 1]       # doctest: +SKIP
"""

from __future__ import annotations

import math

from .config import AugmentConfig

__all__ = ["BatchAugment", "torchvision_equivalent"]

# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale
_LUMA = (0.299, 0.587, 0.114)


class BatchAugment:
    """Callable ``(N, 3, H, W) float in [0, 1] -> same shape``, independent random draw per sample."""

    def __init__(self, cfg: AugmentConfig, *, generator=None):
        self.cfg = cfg
        self.generator = generator

    def _u(self, n, lo, hi, device):
        import torch

        return torch.rand(n, device=device, generator=self.generator) * (hi - lo) + lo

    def __call__(self, x):
        cfg = self.cfg
        if not cfg.enabled:
            return x
        x = self._geometry(x)
        x = self._colour(x)
        if cfg.grayscale_p > 0:
            x = self._grayscale(x)
        if cfg.blur_p > 0:
            x = self._blur(x)
        return x

    def _geometry(self, x):
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        n, dev = x.shape[0], x.device
        lo_s, hi_s = cfg.crop_scale
        if lo_s >= 1.0 and cfg.rotation == 0 and cfg.translate == 0 and not cfg.hflip:
            return x
        # RandomResizedCrop: area fraction and log-uniform aspect ratio -> crop width/height (fractions)
        area = self._u(n, lo_s, hi_s, dev)
        log_r = self._u(n, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), dev)
        ratio = torch.exp(log_r)
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        # crop centre anywhere the crop fits, plus RandomAffine-style translation (normalised coords span 2)
        cx = self._u(n, -1, 1, dev) * (1 - w) + self._u(n, -1, 1, dev) * 2 * cfg.translate
        cy = self._u(n, -1, 1, dev) * (1 - h) + self._u(n, -1, 1, dev) * 2 * cfg.translate
        angle = self._u(n, -cfg.rotation, cfg.rotation, dev) * (math.pi / 180)
        cos, sin = torch.cos(angle), torch.sin(angle)
        flip = torch.ones(n, device=dev)
        if cfg.hflip:
            flip = torch.where(torch.rand(n, device=dev, generator=self.generator) < 0.5, -flip, flip)
        theta = torch.empty(n, 2, 3, device=dev)
        # input = centre + diag(w, h) @ R(angle) @ diag(flip, 1) @ output
        theta[:, 0, 0] = w * cos * flip
        theta[:, 0, 1] = -w * sin
        theta[:, 1, 0] = h * sin * flip
        theta[:, 1, 1] = h * cos
        theta[:, 0, 2] = cx
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=cfg.padding, align_corners=False)

    def _colour(self, x):
        import torch

        cfg = self.cfg
        n, dev = x.shape[0], x.device
        shape = (n, 1, 1, 1)
        if cfg.brightness > 0:
            x = x * self._u(n, max(0.0, 1 - cfg.brightness), 1 + cfg.brightness, dev).view(shape)
        luma = torch.tensor(_LUMA, device=dev, dtype=x.dtype).view(1, 3, 1, 1)
        if cfg.contrast > 0:
            mean = (x * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
            c = self._u(n, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast, dev).view(shape)
            x = (x - mean) * c + mean
        if cfg.saturation > 0:
            gray = (x * luma).sum(1, keepdim=True)
            s = self._u(n, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation, dev).view(shape)
            x = (x - gray) * s + gray
        if cfg.hue > 0:
            x = _rotate_hue(x, self._u(n, -cfg.hue, cfg.hue, dev) * 2 * math.pi)
        return x.clamp_(0.0, 1.0)

    def _grayscale(self, x):
        import torch

        luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        gray = (x * luma).sum(1, keepdim=True).expand_as(x)
        pick = (torch.rand(x.shape[0], device=x.device, generator=self.generator) < self.cfg.grayscale_p).view(-1, 1, 1, 1)
        return torch.where(pick, gray, x)

    def _blur(self, x):
        import torch
        import torch.nn.functional as F

        n, c, hgt, wid = x.shape
        lo, hi = self.cfg.blur_sigma
        sigma = self._u(n, lo, hi, x.device)
        radius = max(1, min(int(math.ceil(3 * hi)), (min(hgt, wid) - 1) // 2))
        t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
        k = k / k.sum(1, keepdim=True)  # (n, K), one 1-D kernel per sample
        k = k.repeat_interleave(c, 0)  # (n*c, K)
        y = x.reshape(1, n * c, hgt, wid)
        y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
        y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
        y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
        y = y.view(n, c, hgt, wid)
        pick = (torch.rand(n, device=x.device, generator=self.generator) < self.cfg.blur_p).view(-1, 1, 1, 1)
        return torch.where(pick, y, x)


def _rotate_hue(x, angle):
    """Hue rotation as a per-sample 3x3 matrix in YIQ space (close to HSV hue shift, all linear)."""
    import torch

    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device, dtype=x.dtype
    )
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(x.shape[0], 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    m = from_yiq @ rot @ to_yiq  # (n, 3, 3)
    return torch.einsum("nij,njhw->nihw", m, x)


def torchvision_equivalent(cfg: AugmentConfig, size: int):
    """The per-image torchvision transforms v2 pipeline with the same parameters (used as a baseline)."""
    import torch
    from torchvision.transforms import v2

    ops = [
        v2.RandomResizedCrop(size, scale=cfg.crop_scale, ratio=cfg.crop_ratio, antialias=True),
        v2.RandomAffine(degrees=cfg.rotation, translate=(cfg.translate, cfg.translate)),
    ]
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    ops.append(v2.ToDtype(torch.float32, scale=True))
    ops.append(v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    if cfg.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(cfg.grayscale_p))
    if cfg.blur_p > 0:
        radius = max(1, int(math.ceil(3 * cfg.blur_sigma[1])))
        ops.append(v2.RandomApply([v2.GaussianBlur(2 * radius + 1, cfg.blur_sigma)], p=cfg.blur_p))
    return v2.Compose(ops)

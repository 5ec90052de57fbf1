"""``TrainConfig``: every training choice in one frozen dataclass, loaded from YAML and CLI flags.

>>> cfg = load_config({"data": "data/digits", "out": "runs/d", "epochs": 5})      # doctest: +SKIP
>>> cfg.augment.hflip, cfg.qat.epochs                                              # doctest: +SKIP
(False, 3)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .._config import from_mapping, load_yaml, merge, to_mapping
from ..errors import ConfigError, suggest

__all__ = ["AugmentConfig", "QATConfig", "PTQConfig", "TrainConfig", "load_config", "dump_config", "auto_batch_size"]


@dataclass(frozen=True)
class AugmentConfig:
    """Per-sample random augmentation, applied to whole batches at once (see ``edgerec.train.augment``).

    Semantics follow torchvision's transforms v2 of the same names. Horizontal flip is off by default
    because it changes the meaning of digits, text and arrows; turn it on for natural images.
    """

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)  # RandomResizedCrop area fraction
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # RandomResizedCrop aspect ratio
    translate: float = 0.1  # RandomAffine translate, fraction of the side
    rotation: float = 10.0  # RandomRotation degrees, +/-
    hflip: bool = False  # RandomHorizontalFlip(p=0.5)
    brightness: float = 0.2  # ColorJitter
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    grayscale_p: float = 0.0  # RandomGrayscale
    blur_p: float = 0.0  # GaussianBlur applied with this probability
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    padding: Literal["border", "zeros", "reflection"] = "border"  # what fills pixels moved in from outside


@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware fine-tuning after fp32 training (torchvision's QAT reference schedule)."""

    epochs: int = 3
    lr: float = 0.001  # absolute; cosine-decayed to 0 over the QAT phase
    freeze_bn_epoch: float = 0.6  # fraction of the phase after which BatchNorm statistics stop updating
    freeze_observers_epoch: float = 0.8  # ... and quantization ranges stop moving
    max_steps: int | None = None  # cap per epoch (tests, quick looks)
    # Knowledge distillation from the float model: the loss is this share of the KL divergence from the float
    # model's answers (at ``distill_temperature``) plus the rest of the label loss. 0: labels only.
    distill: float = 0.0
    distill_temperature: float = 2.0
    min_steps: int = 0  # on small sets, more epochs until the phase has at least this many steps
    # better: PTQ is calibrated too and the int8 graph kept is the more accurate on validation, then the one that
    # agrees more with fp32 (a few QAT epochs on a small set can do worse than PTQ); qat: always QAT's
    keep: Literal["better", "qat"] = "better"


@dataclass(frozen=True)
class PTQConfig:
    calib_images: int = 256  # training images fed through the observers


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``edgerec train`` does; ``edgerec train --config FILE.yaml`` takes these keys."""

    data: Path | None = None
    out: Path | None = None
    # ImageNet weights that install offline with the train extra, and every op quantizes (ReLU6, no SE or
    # hard-swish): int8 pays on every backend. See the README's "Which model" table.
    model: str = "efficientnet_lite0"
    weights: str = "imagenet"  # imagenet | none | PATH to a backbone state dict
    img_size: int = 224
    # auto: center_crop, or letterbox when many training images are longer than 2:1 (tensors.choose_resize_mode)
    resize_mode: Literal["auto", "squash", "center_crop", "letterbox"] = "auto"
    mean: tuple[float, float, float] | None = None  # None: from the weights (edgerec.train.models.input_config)
    std: tuple[float, float, float] | None = None
    epochs: int = 20
    head_epochs: int = 2  # frozen-backbone epochs for the new head (pretrained weights only)
    # None: 64, or on a small set the largest of 32 and 16 that still gives 8 steps per epoch (auto_batch_size);
    # measured on 100 digits: 64 gave 2 steps an epoch and 92.3/82.5 % (pretrained/scratch), 16 gave 95.8/93.3 %
    batch_size: int | None = None
    lr: float = 0.01  # peak fine-tuning rate; the head phase uses head_lr_mult x lr
    head_lr_mult: float = 10.0
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    bn_momentum: float | None = None  # BatchNorm momentum override (PyTorch convention); rarely needed, see bn_recal_images
    bn_recal_images: int = 1024  # training images BatchNorm statistics are recomputed on before each evaluation; 0 = off
    # recompute them on those images as training augments them (True) or as they are (False). Measured on digits
    # (MobileNetV3-small, train/digits.yaml): val/test 99.4/97.8 % augmented, 94.7/91.1 % clean: the layers after
    # each BatchNorm learned on augmented batches
    bn_recal_augment: bool = True
    dropout: float | None = None  # classifier dropout override
    balance: Literal["weighted", "sampler", "none"] = "none"
    patience: int = 0  # early stopping: epochs without val improvement; 0 = off
    split: tuple[float, float, float] = (0.7, 0.2, 0.1)
    seed: int = 0
    multi_label: bool = False
    threshold: float = 0.5  # multi-label decision threshold
    folds: int = 0  # k-fold cross-validation on train+val before the final model; 0 = off
    qat: bool = False
    ptq: bool = False
    qat_cfg: QATConfig = field(default_factory=QATConfig)
    ptq_cfg: PTQConfig = field(default_factory=PTQConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    quantizer: str = "xnnpack"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int | None = None  # image decoding threads (decoding happens once); None: every core
    # where decoded images live: ram (one tensor per process), disk (one file per dataset version, shared by
    # every process on the machine: edgerec.train.cache), auto (ram for one process when it fits in a quarter
    # of the available memory, else disk)
    cache: Literal["auto", "ram", "disk"] = "auto"
    cache_dir: Path | None = None  # the disk cache's folder; default $EDGEREC_CACHE/decoded or ~/.cache/edgerec/decoded
    threads: int | None = None  # torch intra-op threads; default: all cores
    amp: bool = True  # mixed precision on CUDA
    channels_last: bool = True
    max_steps: int | None = None  # cap of optimiser steps per epoch (tests, quick looks)
    overwrite: bool = False  # replace an existing --out folder
    resume: Path | None = None  # a finished run: start from its best.pt (label set must match)
    plots: bool = True
    progress: bool = True

    def __post_init__(self):
        from .models import MODELS

        if self.model not in MODELS:
            raise ConfigError(f"unknown model '{self.model}'{suggest(self.model, MODELS)}")
        positive = {"img_size": self.img_size, "batch_size": 1 if self.batch_size is None else self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        smallest = MODELS[self.model].min_size
        if self.img_size < smallest:
            raise ConfigError(f"img_size {self.img_size} is too small for {self.model}: it takes {smallest} px or more",
                              hint=f"pass --img-size {smallest} or more (its pretrained weights were trained at "
                              f"{MODELS[self.model].pretrained.input_size} px)")
        if self.epochs < 0 or self.head_epochs < 0:
            raise ConfigError("epochs and head_epochs must be >= 0")
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"folds must be 0 (off) or >= 2, got {self.folds}")
        if abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) < 0:
            raise ConfigError(f"split ratios must be >= 0 and add up to 1, got {self.split}")
        if self.bn_recal_images < 0:
            raise ConfigError(f"bn_recal_images must be >= 0 (0 = off), got {self.bn_recal_images}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        q = self.qat_cfg
        if not 0.0 <= q.distill <= 1.0 or q.distill_temperature <= 0 or q.min_steps < 0:
            raise ConfigError(f"qat_cfg: distill must be in [0, 1], distill_temperature > 0 and min_steps >= 0; got "
                              f"{q.distill}, {q.distill_temperature}, {q.min_steps}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0: decode on one thread), got {self.workers}")
        if self.threads is not None:  # the rule every verb shares: auto/0/-1 = all cores, else 1..max_threads()
            from ..limits import resolve_threads

            object.__setattr__(self, "threads", resolve_threads(self.threads, what="threads"))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def auto_batch_size(n_train: int, *, world_size: int = 1, cap: int = 64, floor: int = 16, min_steps: int = 8) -> int:
    """``batch_size: null``: ``cap``, halved while a process would get fewer than ``min_steps`` steps per epoch,
    never under ``floor``. A 100-image set trains with 16 (6 steps an epoch) instead of 64 (2).

    >>> auto_batch_size(100), auto_batch_size(300), auto_batch_size(1258), auto_batch_size(1258, world_size=4)
    (16, 32, 64, 32)
    """
    per_process = max(1, n_train // max(1, world_size))
    b = cap
    while b > floor and per_process < b * min_steps:
        b //= 2
    return b


def load_config(overrides: Mapping[str, Any] | None = None, *, config_file: str | Path | None = None) -> TrainConfig:
    """Defaults <- YAML file <- ``overrides`` (CLI flags; ``None`` values keep what is below)."""
    data: dict[str, Any] = {}
    where = "config"
    if config_file is not None:
        data = load_yaml(config_file)
        where = str(config_file)
    if overrides:
        _check_keys(overrides, where="flags")
        data = merge(data, overrides)
    return from_mapping(TrainConfig, data, where=where)


def dump_config(cfg: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(to_mapping(cfg), sort_keys=False)


def _check_keys(mapping: Mapping[str, Any], *, where: str) -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in mapping:
        if str(key).replace("-", "_") not in names:
            raise ConfigError(f"unknown key '{key}' in {where}{suggest(str(key), names)}")

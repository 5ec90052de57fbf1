"""torchvision backbones with a new classification head, and where their pretrained weights come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ModelError, suggest

__all__ = ["MODELS", "build_model", "head_parameters", "backbone_parameters"]


@dataclass(frozen=True)
class ModelInfo:
    builder: str  # torchvision.models function
    weights_enum: str  # torchvision weights enum with IMAGENET1K_V1
    head: str  # attribute path of the final Linear layer


MODELS: dict[str, ModelInfo] = {
    "mobilenet_v3_small": ModelInfo("mobilenet_v3_small", "MobileNet_V3_Small_Weights", "classifier.3"),
    "mobilenet_v3_large": ModelInfo("mobilenet_v3_large", "MobileNet_V3_Large_Weights", "classifier.3"),
    "mobilenet_v2": ModelInfo("mobilenet_v2", "MobileNet_V2_Weights", "classifier.1"),
    "efficientnet_b0": ModelInfo("efficientnet_b0", "EfficientNet_B0_Weights", "classifier.1"),
    "resnet18": ModelInfo("resnet18", "ResNet18_Weights", "fc"),
}


def _info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ModelError(f"unknown model '{name}'{suggest(name, MODELS)}")
    return MODELS[name]


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


def build_model(name: str, num_classes: int, *, weights: str | Path = "none"):
    """A torchvision ``name`` with a fresh ``num_classes`` head.

    ``weights``: ``"none"`` (random init), ``"imagenet"`` (torchvision's IMAGENET1K_V1 through its weight
    enum; needs the file in the torch hub cache when offline) or a path to a ``.pth`` state dict of the
    backbone (head keys are ignored).

    >>> m = build_model("mobilenet_v3_small", 10)   # doctest: +SKIP
    """
    import torch
    import torchvision

    info = _info(name)
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    builder: Callable = getattr(torchvision.models, info.builder)
    weights_str = str(weights)
    if weights_str == "none":
        model = builder(weights=None)
    elif weights_str == "imagenet":
        enum = getattr(torchvision.models, info.weights_enum).IMAGENET1K_V1
        try:
            model = builder(weights=enum)
        except (OSError, RuntimeError) as exc:  # urllib errors are OSError subclasses
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
            raise ModelError(
                f"could not load ImageNet weights for {name} ({exc.__class__.__name__}: {exc})",
                hint=f"this machine cannot download them: copy {Path(enum.url).name} from {enum.url} "
                f"to {cache}, or pass --weights PATH or --weights none",
            ) from exc
    else:
        path = Path(weights_str)
        if not path.is_file():
            raise ModelError(f"weights file not found: {path}", hint="pass --weights imagenet, none or an existing .pth file")
        model = builder(weights=None)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for a bad file
            raise ModelError(f"{path} is not a readable torch state dict: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        head_prefix = info.head + "."
        state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(head_prefix)]
        if missing or unexpected:
            raise ModelError(
                f"{path} does not fit {name}: {len(missing)} missing and {len(unexpected)} unexpected keys "
                f"(first: {(missing + unexpected)[:3]})",
                hint=f"pass weights saved from torchvision's {name}",
            )
    old = _get(model, info.head)
    _set(model, info.head, torch.nn.Linear(old.in_features, num_classes))
    return model


def head_parameters(model, name: str):
    return list(_get(model, _info(name).head).parameters())


def backbone_parameters(model, name: str):
    head = {id(p) for p in head_parameters(model, name)}
    return [p for p in model.parameters() if id(p) not in head]

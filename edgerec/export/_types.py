"""What every format exporter receives (it returns a ``bundle.Artifact``: the one artifact contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..bundle import InputSpec

__all__ = ["ExportSource"]


@dataclass
class ExportSource:
    """One trained model, ready to convert.

    ``model`` takes NCHW float input already normalised (``(x/pixel_scale - mean)/std``) and returns
    logits; ``quantized`` is the converted int8 PT2E graph with the same signature (or None).
    Images are uint8 RGB, already resized to ``input_spec`` (N, H, W, 3).
    """

    model: Any
    labels: tuple[str, ...]
    task: str
    input_spec: InputSpec
    example: Any  # torch.Tensor (1, 3, H, W), normalised
    quantized: Any = None
    quant_method: str | None = None  # "qat" | "ptq" | None
    calib_images: Any = None  # np.ndarray (N, H, W, 3) uint8 RGB
    eval_images: Any = None  # np.ndarray (N, H, W, 3) uint8 RGB, held-out test split
    eval_labels: Any = None  # np.ndarray (N,) int (single-label) or (N, C) {0,1} (multi-label)
    name: str = "model"
    version: str = "1"
    model_name: str | None = None
    temperatures: dict = field(default_factory=dict)  # "fp32"/"int8" -> confidence temperature fitted at training
    extra: dict = field(default_factory=dict)

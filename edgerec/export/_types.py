"""What every format exporter receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import InputSpec, QuantParams

__all__ = ["ExportSource", "FormatResult"]


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


@dataclass
class FormatResult:
    """Files written (relative to the exporter's out_dir, main file first) and their manifest fields."""

    files: list[Path]
    layout: str  # NHWC | NCHW
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    input_quant: QuantParams | None = None
    output_quant: QuantParams | None = None
    normalization_in_model: bool = False
    embedded_preprocess: bool = False
    output: str = "logits"
    quantization: str | None = None
    converter: str | None = None

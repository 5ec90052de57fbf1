"""The flat string facts every model file carries about itself (ONNX metadata_props, OpenVINO rt_info)."""

from __future__ import annotations

import dataclasses
import json

from ._types import ExportSource

__all__ = ["model_card"]


def model_card(src: ExportSource, *, precision: str, quantization: str | None) -> dict[str, str]:
    """Labels, the input contract and provenance as string values, the same keys in every format."""
    from .. import __version__

    card = {
        "edgerec_version": __version__,
        "name": src.name,
        "version": str(src.version),
        "task": src.task,
        "labels": json.dumps(list(src.labels)),
        "input": json.dumps(dataclasses.asdict(src.input_spec)),
        "precision": precision,
        "quantization": quantization or "none",
        "output": "logits",
    }
    if src.model_name:
        card["model"] = src.model_name
    return card

"""The format table: one record per model format, read by export, the runtime, bench and the doctor.

Standard library only, so the board-side runtime reads it without torch. Adding a format is one record here,
one exporter module (``(src, precision, out_dir, **options) -> bundle.Artifact``) and, if no backend runs it
yet, one backend module with its row in ``edgerec.runtime.backends.BACKENDS``.

>>> from edgerec.formats import FORMATS
>>> FORMATS["onnx"].backends
('onnxruntime', 'openvino')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Format", "FORMATS", "PRECISIONS", "format_info"]

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Format:
    """What edgerec knows about one model format."""

    name: str
    suffix: str  # the artifact's main file (OpenVINO's weights sit beside it in a .bin)
    exporter: str  # "module:function" that writes it (the export extra); imported on first use: converters are heavy
    backends: tuple[str, ...]  # runtime backends that run it, best first; export verifies with the first
    dynamic_batch: bool  # edgerec's exporter leaves the batch dimension open (else: batch 1)
    embedded_preprocess: bool  # can carry the u8 NHWC -> normalised NCHW step inside the model
    contract: str  # where the labels and the input contract travel inside the file


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("tflite", ".tflite", "edgerec.export.tflite_format:export_tflite", ("litert",),
           dynamic_batch=False, embedded_preprocess=False,
           contract="TFLite Model Metadata (what MediaPipe reads) with labels.txt and edgerec.json attached"),
    Format("onnx", ".onnx", "edgerec.export.onnx_format:export_onnx", ("onnxruntime", "openvino"),
           dynamic_batch=True, embedded_preprocess=False, contract="metadata_props"),
    Format("openvino", ".xml", "edgerec.export.openvino_format:export_openvino", ("openvino",),
           dynamic_batch=True, embedded_preprocess=True, contract="rt_info"),
)}


def format_info(name: str) -> Format:
    """The record of format ``name``; an unknown name is a ``ConfigError`` with a suggestion."""
    if name not in FORMATS:
        from .errors import ConfigError, suggest

        raise ConfigError(f"unknown model format '{name}'{suggest(name, FORMATS)}",
                          hint=f"one of {', '.join(FORMATS)}")
    return FORMATS[name]

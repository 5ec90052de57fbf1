"""Quantization and input/output tensor math, in one tested place (numpy only).

Every path from pixels to a model's input tensor, and from its output tensor to float scores, goes
through here: the runtime's Classifier, export verification and the benchmarks alike.
"""

from __future__ import annotations

import numpy as np

from ..bundle import Artifact, InputSpec, QuantParams

__all__ = ["quantize", "dequantize", "normalize", "to_model_input", "from_model_output", "output_decoder", "pixel_lut", "DTYPES"]

DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int8": np.int8}


def quantize(x: np.ndarray, qp: QuantParams, dtype: str | np.dtype) -> np.ndarray:
    """``q = clip(round(x / scale) + zero_point)`` in the integer type's range."""
    dt = np.dtype(DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype)
    info = np.iinfo(dt)
    q = np.rint(np.asarray(x, np.float32) / np.float32(qp.scale)) + qp.zero_point
    return np.clip(q, info.min, info.max).astype(dt)


def dequantize(q: np.ndarray, qp: QuantParams) -> np.ndarray:
    """``x = scale * (q - zero_point)`` as float32."""
    return (np.asarray(q, np.float32) - np.float32(qp.zero_point)) * np.float32(qp.scale)


def normalize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``(pixels / pixel_scale - mean) / std`` per channel (channels last), float32."""
    mean = np.asarray(spec.mean, np.float32) * np.float32(spec.pixel_scale)
    inv = 1.0 / (np.asarray(spec.std, np.float32) * np.float32(spec.pixel_scale))
    return (np.asarray(pixels, np.float32) - mean) * inv


def to_model_input(pixels: np.ndarray, spec: InputSpec, artifact: Artifact) -> np.ndarray:
    """Resized pixels (N, H, W, 3) uint8 in the model's colour order -> the artifact's input tensor.

    Normalisation happens here unless the artifact does it inside (``normalization_in_model``); integer
    inputs are quantized with the artifact's own scale/zero-point; NCHW artifacts get a transpose.
    When an integer input's scale/zero-point are exactly ``1, 0`` (uint8) or ``1, -128`` (int8) on raw
    pixels, the tensor is built with integer arithmetic only.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[None]
    if artifact.embedded_preprocess:
        # such models take camera frames: BGR, whatever the model's own colour order
        x = pixels.astype(np.uint8, copy=False)
        if spec.color_order == "RGB":
            x = np.ascontiguousarray(x[..., ::-1])
    else:
        dtype = artifact.input_dtype
        qp = artifact.input_quant
        if artifact.normalization_in_model and dtype in ("uint8", "int8") and qp is not None and qp.scale == 1.0:
            # raw pixels: the quantization is a pure shift
            if dtype == "uint8" and qp.zero_point == 0:
                x = pixels.astype(np.uint8, copy=False)
            elif dtype == "int8" and qp.zero_point == -128:
                x = (pixels.astype(np.int16) - 128).astype(np.int8)
            else:
                x = quantize(pixels, qp, dtype)
        else:
            real = pixels.astype(np.float32) if artifact.normalization_in_model else normalize(pixels, spec)
            if dtype in ("uint8", "int8"):
                if qp is None:
                    raise ValueError(f"{artifact.key}: integer input without input_quant in the manifest")
                x = quantize(real, qp, dtype)
            else:
                x = real.astype(DTYPES[dtype], copy=False)
    if artifact.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def from_model_output(raw: np.ndarray, artifact: Artifact) -> np.ndarray:
    """The artifact's raw output -> float32 scores (logits or probabilities, per ``artifact.output``)."""
    raw = np.asarray(raw)
    if artifact.output_dtype in ("uint8", "int8") and artifact.output_quant is not None:
        return dequantize(raw, artifact.output_quant)
    return raw.astype(np.float32, copy=False)


def output_decoder(artifact: Artifact, *, calibrated: bool = False):
    """``from_model_output`` for one artifact as a function of the raw output alone, for the per-frame path.

    Integer outputs take one table look-up: all 256 values are dequantized up front by ``dequantize``
    itself, so the figures are exactly ``from_model_output``'s. The result is always a new float32 array
    (the caller may work in place on it); float outputs are copied once.

    ``calibrated=True`` also divides logits by the artifact's confidence ``temperature`` (folded into the
    table for integer outputs, so it costs nothing per frame); the top-1 answer never changes.
    """
    t = artifact.temperature if calibrated and artifact.output == "logits" else None
    inv = np.float32(1.0 / t) if t and t != 1.0 else None
    if artifact.output_dtype in ("uint8", "int8") and artifact.output_quant is not None:
        dt = np.dtype(DTYPES[artifact.output_dtype])
        codes = np.arange(256, dtype=np.uint8)  # every byte pattern, indexed by its unsigned value
        table = dequantize(codes.view(dt), artifact.output_quant)
        if inv is not None:
            table = table * inv

        def decode(raw: np.ndarray) -> np.ndarray:
            if type(raw) is not np.ndarray or raw.dtype is not dt:  # rare: anything else takes the reference path
                z = np.array(from_model_output(raw, artifact), np.float32)
                return z if inv is None else np.multiply(z, inv, out=z)
            return table.take(raw.view(np.uint8))

        return decode
    if inv is None:
        return lambda raw: np.array(raw, np.float32)
    return lambda raw: np.multiply(np.asarray(raw, np.float32), inv, dtype=np.float32)


def pixel_lut(spec: InputSpec, artifact: Artifact) -> np.ndarray:
    """(256, 3) table: resized pixel value per channel -> the artifact's input value (NHWC, its dtype).

    Every step from a uint8 pixel to the model's input (normalisation, quantization with the model's own
    scale/zero-point, or nothing when the model takes raw pixels) is a per-channel function of one byte,
    so the runtime applies it as one table look-up per frame. The table is built by ``to_model_input``
    itself, so it cannot drift from the reference math above.
    """
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # (256, 3): value v on every channel
    nhwc = artifact if artifact.layout == "NHWC" else _with_layout(artifact, "NHWC")
    return to_model_input(ramp[None, None], spec, nhwc)[0, 0]


def _with_layout(artifact: Artifact, layout: str) -> Artifact:
    import dataclasses

    return dataclasses.replace(artifact, layout=layout)

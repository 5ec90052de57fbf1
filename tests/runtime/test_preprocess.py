"""Pre-processing against reference math, for every resize mode, layout and input type."""

import dataclasses

import cv2
import numpy as np
import pytest

from edgerec.bundle import Artifact, InputSpec, QuantParams
from edgerec.errors import ConfigError
from edgerec.runtime.adapters import normalize, pixel_lut, quantize, to_model_input
from edgerec.runtime.preprocess import Preprocessor, fit_rect, to_bgr

SPEC = InputSpec(height=24, width=32)
FP32_NCHW = Artifact(format="onnx", precision="fp32", layout="NCHW")
FP32_NHWC = Artifact(format="tflite", precision="fp32", layout="NHWC")


def _frame(h=60, w=100, seed=0):
    # smooth content: interpolation order differences stay small
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 / w), (yy * 255 / h), ((xx + yy) * 127 / (h + w))], -1)
    return (img + np.random.default_rng(seed).integers(0, 3, img.shape)).astype(np.uint8)


def _reference_norm(rgb):
    mean, std = np.array(SPEC.mean, np.float32), np.array(SPEC.std, np.float32)
    return (rgb.astype(np.float32) / 255.0 - mean) / std


def test_squash_nchw_matches_reference():
    frame = _frame()
    x = Preprocessor(SPEC, FP32_NCHW)(frame)
    rgb = cv2.cvtColor(cv2.resize(frame, (32, 24), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    ref = _reference_norm(rgb).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, 24, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, ref, atol=1e-5)


def test_squash_nhwc_bgr_model_keeps_bgr():
    spec = dataclasses.replace(SPEC, color_order="BGR")
    frame = _frame()
    x = Preprocessor(spec, FP32_NHWC)(frame)
    resized = cv2.resize(frame, (32, 24)).astype(np.float32)
    ref = (resized / 255.0 - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    np.testing.assert_allclose(x[0], ref, atol=1e-5)


def test_center_crop_matches_resize_then_crop():
    spec = dataclasses.replace(SPEC, resize_mode="center_crop", height=32, width=32)
    frame = _frame(60, 100)
    x = Preprocessor(spec, FP32_NHWC)(frame)
    # torchvision's recipe: short side to 32, then centre crop 32x32
    short = cv2.resize(frame, (round(100 * 32 / 60), 32), interpolation=cv2.INTER_LINEAR)
    off = (short.shape[1] - 32) // 2
    ref = _reference_norm(cv2.cvtColor(short[:, off:off + 32], cv2.COLOR_BGR2RGB))
    assert np.abs(x[0] - ref).mean() < 0.05  # about 1 pixel level: the two orders of crop/resize
    # and it differs clearly from squashing (the crop removed the sides)
    squash = Preprocessor(dataclasses.replace(spec, resize_mode="squash"), FP32_NHWC)(frame)
    assert np.abs(squash[0] - ref).mean() > 0.1


def test_letterbox_pads_with_mean_and_keeps_aspect():
    spec = dataclasses.replace(SPEC, resize_mode="letterbox", height=32, width=32)
    frame = _frame(20, 40)  # 2:1 -> a 32x16 box, 8 rows of padding above and below
    pre = Preprocessor(spec, FP32_NHWC)
    x = pre(frame)[0]
    (_, _, _, _), (by, bx, bh, bw) = fit_rect(20, 40, 32, 32, "letterbox")
    assert (by, bx, bh, bw) == (8, 0, 16, 32)
    assert np.abs(x[:8]).max() < 0.02 and np.abs(x[24:]).max() < 0.02  # mean colour normalises to ~0
    ref = _reference_norm(cv2.cvtColor(cv2.resize(frame, (32, 16)), cv2.COLOR_BGR2RGB))
    np.testing.assert_allclose(x[8:24], ref, atol=1e-5)


def test_buffers_are_reused_and_frame_size_changes_are_handled():
    pre = Preprocessor(dataclasses.replace(SPEC, resize_mode="letterbox"), FP32_NCHW)
    a = pre(_frame(60, 100))
    first = a.copy()
    b = pre(_frame(100, 60, seed=1))  # portrait: different box, padding redrawn
    assert np.shares_memory(a, b)
    assert not np.allclose(first, b)
    np.testing.assert_allclose(pre(_frame(60, 100)), first)


@pytest.mark.parametrize("shape", [(40, 50), (40, 50, 1), (40, 50, 4)])
def test_gray_and_bgra_frames_are_converted(shape):
    frame = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    pre = Preprocessor(SPEC, FP32_NCHW)
    x = pre(frame)
    ref = Preprocessor(SPEC, FP32_NCHW)(to_bgr(frame))
    assert to_bgr(frame).shape == (40, 50, 3)
    np.testing.assert_array_equal(x, ref)


def test_uint16_frame_is_scaled_down():
    frame16 = np.full((10, 10, 3), 65535, np.uint16)
    assert to_bgr(frame16).max() == 255


def test_bad_frame_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="frame must be"):
        to_bgr(np.zeros((4, 4, 5), np.uint8))


@pytest.mark.parametrize("dtype,qp", [("uint8", QuantParams(0.0187, 114)), ("int8", QuantParams(0.0187, -14))])
def test_quantized_input_equals_quantize_of_normalized(dtype, qp):
    art = Artifact(format="tflite", precision="int8", layout="NHWC", input_dtype=dtype, input_quant=qp)
    frame = _frame()
    x = Preprocessor(SPEC, art)(frame)
    rgb = cv2.cvtColor(cv2.resize(frame, (32, 24)), cv2.COLOR_BGR2RGB)
    ref = quantize(_reference_norm(rgb), qp, dtype)
    assert x.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(x[0], ref)


def test_raw_pixel_int8_input_is_a_shift():
    art = Artifact(format="tflite", precision="int8", layout="NHWC", input_dtype="int8",
                   input_quant=QuantParams(1.0, -128), normalization_in_model=True)
    lut = pixel_lut(SPEC, art)
    np.testing.assert_array_equal(lut[:, 0], (np.arange(256) - 128).astype(np.int8))


def test_fp16_input():
    art = Artifact(format="onnx", precision="fp16", layout="NCHW", input_dtype="float16")
    x = Preprocessor(SPEC, art)(_frame())
    assert x.dtype == np.float16
    ref = Preprocessor(SPEC, FP32_NCHW)(_frame())
    np.testing.assert_allclose(x.astype(np.float32), ref, atol=3e-3)


def test_lut_agrees_with_to_model_input_for_every_value():
    art = Artifact(format="onnx", precision="int8", layout="NCHW", input_dtype="uint8", input_quant=QuantParams(0.02, 110))
    pixels = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    ref = to_model_input(pixels, SPEC, art)  # NCHW
    lut = pixel_lut(SPEC, art)
    via_lut = np.stack([lut[pixels[..., c], c] for c in range(3)], axis=1)
    np.testing.assert_array_equal(via_lut, ref)
    np.testing.assert_allclose(normalize(pixels, SPEC)[0, 0, 0], _reference_norm(pixels[0, 0, 0]), atol=1e-6)


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ConfigError, match="resize_mode"):
        Preprocessor(dataclasses.replace(SPEC, resize_mode="stretch"), FP32_NCHW)

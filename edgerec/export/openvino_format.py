"""OpenVINO IR (``.xml`` + ``.bin``): fp32, fp16 (compressed weights), int8, optional embedded pre-processing.

int8 comes from the run's converted PT2E graph (QAT or PTQ) by way of its QDQ ONNX form (OpenVINO's ONNX
frontend turns each quantize/dequantize pair into a FakeQuantize node that the CPU plugin runs as int8; its
PyTorch frontend does not read the PT2E graph), or with ``int8_method="nncf"`` from NNCF's
post-training quantization of the fp32 IR on the calibration images.

Labels and the input contract go into ``rt_info`` twice: under ``model_info`` in the form OpenVINO's own
tools read (``labels``, ``mean_values``, ``scale_values``, ``reverse_input_channels``), and under
``edgerec`` as JSON.

With ``embed_preprocess=True`` the colour conversion, resize and normalisation are folded into the model
with ``PrePostProcessor``: the IR takes u8 NHWC BGR frames of any size (``squash`` or ``center_crop``; the
crop is computed from each frame's shape inside the graph). With ``interpolation: bilinear`` the result
matches the runtime's own pre-processing to within 1 grey level; with ``area+bilinear`` OpenVINO's
Pillow-style anti-aliased resize stands in for edgerec's 2x2 halvings (a few grey levels apart, see
docs/export.md); letterbox is not offered.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError
from ._card import model_card
from ..bundle import Artifact
from ._types import ExportSource

__all__ = ["export_openvino", "write_rt_info"]


def export_openvino(src: ExportSource, precision: str, out_dir: Path, *, embed_preprocess: bool = False,
                    int8_method: str = "graph") -> Artifact:
    """Write ``model_<precision>[_pp].xml/.bin`` into ``out_dir``."""
    import openvino as ov

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    quantization = None
    if precision in ("fp32", "fp16"):
        model = _convert(src.model, src.example)
    elif precision == "int8":
        quantization = src.quant_method or "ptq"
        if int8_method == "nncf" or src.quantized is None:
            model = _nncf_quantize(_convert(src.model, src.example), src)
            quantization = "ptq"
        elif int8_method == "graph":
            model = _convert_qdq(src)
        else:
            raise ExportError(f"int8_method must be 'graph' or 'nncf', got '{int8_method}'")
    else:
        raise ExportError(f"OpenVINO has no '{precision}' precision here", hint="use fp32, fp16 or int8")
    layout, in_dtype = "NCHW", "float32"
    if embed_preprocess:
        model = _embed_preprocess(model, src)
        layout, in_dtype = "NHWC", "uint8"
    write_rt_info(model, src, precision=precision, quantization=quantization, embedded=embed_preprocess)
    stem = f"model_{precision}" + ("_pp" if embed_preprocess else "")
    try:
        ov.save_model(model, str(out_dir / f"{stem}.xml"), compress_to_fp16=(precision == "fp16"))
    except RuntimeError as exc:
        raise ExportError(f"openvino.save_model failed: {exc}") from exc
    return Artifact(
        format="openvino",
        precision=precision,
        files=(f"{stem}.xml", f"{stem}.bin"),
        layout=layout,
        input_dtype=in_dtype,
        output_dtype="float32",
        normalization_in_model=embed_preprocess,
        embedded_preprocess=embed_preprocess,
        quantization=quantization,
        converter=f"openvino {ov.__version__}" + (" + nncf" if quantization == "ptq" and int8_method == "nncf" else ""),
    )


def _convert(module, example):
    import openvino as ov
    import torch

    x = example if example.shape[0] > 1 else example.repeat(2, 1, 1, 1)
    try:
        with torch.no_grad():
            model = ov.convert_model(module, example_input=x)
    except Exception as exc:  # the frontend raises OpConversionFailure, RuntimeError, torch errors
        raise ExportError(f"openvino.convert_model failed: {_first_reason(exc)}") from exc
    # open batch, the image size fixed as in the other formats: convert_model leaves every dimension open, and
    # OpenVINO then does shape work on every call (a 32 px model: 0.88 ms per call open, 0.76 ms fixed)
    shape = [ov.Dimension(-1)] + [ov.Dimension(int(d)) for d in x.shape[1:]]
    model.reshape({model.input(0).get_any_name() if model.input(0).get_names() else 0: ov.PartialShape(shape)})
    return model


def _convert_qdq(src: ExportSource):
    import tempfile

    import onnx
    import openvino as ov

    from .onnx_format import qdq_model

    with tempfile.TemporaryDirectory(prefix="edgerec-ov-") as tmp:
        path = Path(tmp) / "qdq.onnx"
        onnx.save_model(qdq_model(src), str(path))
        try:
            return ov.convert_model(str(path))
        except Exception as exc:  # OpConversionFailure and friends
            raise ExportError(f"openvino.convert_model failed on the QDQ graph: {_first_reason(exc)}") from exc


def _first_reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # OpenVINO's report starts with a generic "Check 'false' failed" line; the op and its reason follow
    useful = [ln for ln in lines if ln.startswith("--") or "Exception" in ln or "failed" not in ln.lower()]
    return f"{type(exc).__name__}: " + " | ".join((useful or lines)[:3])[:500]


def _nncf_quantize(model, src: ExportSource):
    import nncf
    import numpy as np

    from ..runtime.adapters import normalize

    if src.calib_images is None or len(src.calib_images) == 0:
        raise ExportError("NNCF int8 needs calibration images", hint="export with --calib N (N > 0)")
    items = [normalize(img[None], src.input_spec).transpose(0, 3, 1, 2).astype(np.float32) for img in src.calib_images]
    return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), preset=nncf.QuantizationPreset.MIXED)


# InputSpec.interpolation -> PrePostProcessor's resize. The area+X rules (edgerec's 2x2 halvings, then X)
# have no exact equivalent: OpenVINO's Pillow-style anti-aliased resize is the closest (docs/export.md).
_RESIZE = {"bilinear": "RESIZE_LINEAR", "nearest": "RESIZE_NEAREST", "bicubic": "RESIZE_CUBIC",
           "area": "RESIZE_BILINEAR_PILLOW", "area+bilinear": "RESIZE_BILINEAR_PILLOW",
           "area+bicubic": "RESIZE_BICUBIC_PILLOW"}
# OpenVINO Model API's names for the resize modes
_RESIZE_TYPE = {"squash": "standard", "center_crop": "crop", "letterbox": "fit_to_window_letterbox"}


def _center_crop(dst_h: int, dst_w: int):
    """A PrePostProcessor step: the centred region of the input's aspect ratio, for frames of any size.

    The same integer arithmetic as ``edgerec.runtime.image.fit_rect``, on the frame's run-time shape.
    """
    import numpy as np
    import openvino.opset13 as ops

    def i64(*v):
        return ops.constant(list(v), np.int64)

    def step(frame):  # u8 NHWC
        shape = ops.shape_of(frame, output_type="i64")
        h, w = ops.gather(shape, i64(1), i64(0)), ops.gather(shape, i64(2), i64(0))
        ch = ops.minimum(h, ops.divide(ops.add(ops.multiply(w, i64(2 * dst_h)), i64(dst_w)), i64(2 * dst_w)))
        cw = ops.minimum(w, ops.divide(ops.add(ops.multiply(h, i64(2 * dst_w)), i64(dst_h)), i64(2 * dst_h)))
        y0, x0 = ops.divide(ops.subtract(h, ch), i64(2)), ops.divide(ops.subtract(w, cw), i64(2))
        start = ops.concat([y0, x0], 0)
        stop = ops.concat([ops.add(y0, ch), ops.add(x0, cw)], 0)
        return ops.slice(frame, start, stop, i64(1, 1), i64(1, 2)).output(0)

    return step


def _embed_preprocess(model, src: ExportSource):
    from openvino import Layout, Type
    from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

    spec = src.input_spec
    if spec.resize_mode not in ("squash", "center_crop"):
        raise ExportError(
            f"embedded pre-processing supports resize_mode squash and center_crop, not '{spec.resize_mode}'",
            hint="export without --embed-preprocess; the runtime does the resize",
        )
    # camera frames as OpenCV delivers them (u8 BGR, any size) in; the model's own colour order inside
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(Type.u8).set_layout(Layout("NHWC")).set_spatial_dynamic_shape() \
        .set_color_format(ColorFormat.BGR)
    steps = ppp.input().preprocess()
    if spec.resize_mode == "center_crop":
        steps.custom(_center_crop(spec.height, spec.width))
    steps.convert_element_type(Type.f32)
    steps.convert_color(ColorFormat.RGB if spec.color_order == "RGB" else ColorFormat.BGR)
    steps.resize(getattr(ResizeAlgorithm, _RESIZE.get(spec.interpolation, "RESIZE_LINEAR")), spec.height, spec.width)
    steps.mean([m * spec.pixel_scale for m in spec.mean])
    steps.scale([s * spec.pixel_scale for s in spec.std])
    ppp.input().model().set_layout(Layout("NCHW"))
    return ppp.build()


def write_rt_info(model, src: ExportSource, *, precision: str, quantization: str | None, embedded: bool) -> None:
    spec = src.input_spec
    info = {
        "model_type": "Classification" if src.task == "single_label" else "Multilabel Classification",
        "labels": " ".join(label.replace(" ", "_") for label in src.labels),
        "mean_values": " ".join(f"{m * spec.pixel_scale:g}" for m in spec.mean),
        "scale_values": " ".join(f"{s * spec.pixel_scale:g}" for s in spec.std),
        "reverse_input_channels": "NO" if spec.color_order == "RGB" else "YES",
        "resize_type": _RESIZE_TYPE.get(spec.resize_mode, spec.resize_mode),
        "embedded_preprocessing": "YES" if embedded else "NO",
    }
    for key, value in info.items():
        model.set_rt_info(value, ["model_info", key])
    for key, value in model_card(src, precision=precision, quantization=quantization).items():
        model.set_rt_info(value, ["edgerec", key])

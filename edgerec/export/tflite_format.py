"""TFLite: fp32, fp16 and full-integer int8, channel-last input of raw pixels, self-describing metadata.

Input contract of every ``.tflite`` edgerec writes (``normalization_in_model: true``):

* layout NHWC, shape (1, H, W, 3), colour order of ``InputSpec`` (RGB);
* values are the raw pixels 0..255: the model applies ``(x / pixel_scale - mean) / std`` itself, so a camera
  frame goes in after resize and BGR->RGB, with no transpose and no arithmetic;
* fp32 and fp16 (fp16 weights, float32 compute and I/O): float32 input;
* int8 (int8 weights and activations throughout): **uint8** input with scale 1.0 and zero point 0, i.e. the
  camera's own uint8 pixels; the graph dequantizes them, normalises per channel in float on the (tiny) input
  tensor and requantizes to the scale the QAT/PTQ graph learned, so one set of scales serves TFLite, ONNX and
  OpenVINO. Output is uint8 logits (the graph's int8 output requantized by one QUANTIZE op, zero point +128:
  identical values) with scale/zero point reported in the result. uint8 at both ends is what MediaPipe Tasks
  and the TFLite Task Library accept for integer models (they reject int8 I/O).

Each file carries TFLite Model Metadata (ImageClassifier: ImageProperties RGB, NormalizationOptions,
``labels.txt`` as TENSOR_AXIS_LABELS) so MediaPipe Tasks' ``ImageClassifier`` loads it and returns our label
names, plus ``edgerec.json`` (labels and the input contract above) as a model-level associated file.
"""

from __future__ import annotations


import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ..bundle import QuantParams
from ..errors import ExportError
from ..bundle import Artifact
from ._types import ExportSource

__all__ = ["export_tflite", "PRECISIONS", "INT8_INPUT_QUANT", "read_tflite_metadata", "tflite_io"]

PRECISIONS = ("fp32", "fp16", "int8")
INT8_INPUT_QUANT = QuantParams(scale=1.0, zero_point=0)  # uint8: q = pixel
_GRAPH_INPUT_QUANT = QuantParams(scale=1.0, zero_point=-128)  # what the PT2E wrapper quantizes to (int8)


def _pixel_model(core, spec, *, int8_input: bool):
    """``core`` (normalised NCHW in) behind an NHWC raw-pixel input."""
    import torch

    class PixelInput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.core = core
            scale = 1.0 / (torch.tensor(spec.std, dtype=torch.float32) * spec.pixel_scale)
            shift = torch.tensor(spec.mean, dtype=torch.float32) * spec.pixel_scale
            self.register_buffer("shift", shift.view(1, 3, 1, 1))
            self.register_buffer("scale", scale.view(1, 3, 1, 1))

        def forward(self, pixels):
            if int8_input:
                qd = torch.ops.quantized_decomposed
                s, z = _GRAPH_INPUT_QUANT.scale, _GRAPH_INPUT_QUANT.zero_point
                q = qd.quantize_per_tensor(pixels, s, z, -128, 127, torch.int8)
                pixels = qd.dequantize_per_tensor(q, s, z, -128, 127, torch.int8)
            x = pixels.permute(0, 3, 1, 2)
            return self.core((x - self.shift) * self.scale)

    PixelInput.__qualname__ = PixelInput.__name__  # tensor names in the .tflite carry it
    return PixelInput().eval()  # converters warn about (and may trace) a module left in training mode


def _int8_graph(src: ExportSource):
    """The converted PT2E graph: the run's QAT/PTQ graph, else PTQ here on ``src.calib_images``."""
    if src.quantized is not None:
        return src.quantized, src.quant_method or "ptq"
    if src.calib_images is None or len(src.calib_images) == 0:
        raise ExportError(
            "int8 TFLite needs the quantized graph or calibration images",
            hint="train with --qat/--ptq, or export with --calib N to calibrate on N training images",
        )
    import torch

    from ..train import qat

    spec = src.input_spec
    x = torch.from_numpy(np.asarray(src.calib_images, dtype=np.float32) / spec.pixel_scale)
    x = ((x - torch.tensor(spec.mean)) / torch.tensor(spec.std)).permute(0, 3, 1, 2).contiguous()
    gm = qat.prepare(src.model.eval(), src.example, qat=False)
    qat.calibrate(gm, [x[i : i + 32] for i in range(0, len(x), 32)])
    return qat.convert(gm), "ptq"


def _convert(module, example, *, quantized: bool) -> bytes:
    import litert_torch

    from ..train._compat import apply_litert_pad_layout_rule

    apply_litert_pad_layout_rule()  # zero pads stay NHWC, with no TRANSPOSE around them (litert-torch 0.10)
    kwargs = {}
    if quantized:
        from litert_torch.quantize.quant_config import QuantConfig

        from ..train.qat import get_quantizer

        # The quantizer here only tells the converter that the graph holds static Q/DQ pairs; the scales
        # come from the graph. It must be litert-torch's class (it reads global_config.is_dynamic), whichever
        # quantizer annotated the graph.
        kwargs["quant_config"] = QuantConfig(pt2e_quantizer=get_quantizer("litert", qat=False))
    # litert-torch prints a line per conversion stage; our own progress bar covers it. A user's explicit
    # LITERT_TORCH_SHOW_PROGRESS wins.
    quiet = "LITERT_TORCH_SHOW_PROGRESS" not in os.environ
    if quiet:
        os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        return litert_torch.convert(module, (example,), **kwargs).model_content()
    except Exception as exc:  # the converter raises ValueError/RuntimeError from MLIR with long messages
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
        raise ExportError(f"litert-torch could not convert the model: {exc.__class__.__name__}: {first}") from exc
    finally:
        if quiet:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)


def _uint8_io(model: bytes) -> bytes:
    """Make an int8-I/O model take uint8 pixels and give uint8 logits (same real values).

    The converter quantizes the raw-pixel input to int8 (scale 1, zero point -128) and feeds it straight to a
    DEQUANTIZE; that kernel reads uint8 as well, so retyping the input tensor to uint8 with zero point 0 is
    exact. The int8 output gets a QUANTIZE (requantize) to uint8 with zero point +128.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sg = m.subgraphs[0]
    ops = m.operatorCodes

    def code(op):
        c = ops[op.opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    # input: int8 (1, -128) -> uint8 (1, 0), only when every consumer is a DEQUANTIZE
    i = int(sg.inputs[0])
    t = sg.tensors[i]
    consumers = [op for op in sg.operators if i in list(op.inputs)]
    zp = list(t.quantization.zeroPoint) if t.quantization is not None else []
    if (t.type != schema.TensorType.INT8 or zp != [_GRAPH_INPUT_QUANT.zero_point]
            or not consumers or any(code(op) != schema.BuiltinOperator.DEQUANTIZE for op in consumers)):
        raise ExportError("the int8 TFLite graph does not start with the expected input DEQUANTIZE",
                          hint="this litert-torch version lays out the input differently; export fp32/fp16")
    t.type = schema.TensorType.UINT8
    t.quantization.zeroPoint = np.array([INT8_INPUT_QUANT.zero_point], dtype=np.int64)

    # output: int8 -> QUANTIZE -> uint8 (zero point + 128)
    o = int(sg.outputs[0])
    old = sg.tensors[o]
    if old.type != schema.TensorType.INT8:
        raise ExportError(f"the int8 TFLite output is tensor type {old.type}, not int8")
    new = schema.TensorT()
    new.shape = np.array(old.shape, dtype=np.int32)
    new.name, old.name = old.name, (old.name.decode() if isinstance(old.name, bytes) else old.name) + "_int8"
    new.type = schema.TensorType.UINT8
    q = schema.QuantizationParametersT()
    q.scale = np.array(old.quantization.scale, dtype=np.float32)
    q.zeroPoint = np.array(old.quantization.zeroPoint, dtype=np.int64) + 128
    new.quantization = q
    m.buffers.append(schema.BufferT())
    new.buffer = len(m.buffers) - 1
    sg.tensors.append(new)
    n = len(sg.tensors) - 1
    quantize = schema.BuiltinOperator.QUANTIZE
    index = next((k for k, c in enumerate(ops) if max(c.builtinCode, c.deprecatedBuiltinCode) == quantize), None)
    if index is None:
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = quantize, min(quantize, 127), 1
        ops.append(c)
        index = len(ops) - 1
    op = schema.OperatorT()
    op.opcodeIndex = index
    op.inputs, op.outputs = np.array([o], dtype=np.int32), np.array([n], dtype=np.int32)
    sg.operators.append(op)
    sg.outputs = np.array([n], dtype=np.int32)
    for sig in m.signatureDefs or []:
        for tm in sig.outputs or []:
            if tm.tensorIndex == o:
                tm.tensorIndex = n
    b = flatbuffers.Builder(len(model) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _fp16(model: bytes) -> bytes:
    from ai_edge_quantizer import quantizer as aeq
    from ai_edge_quantizer.algorithms.nonlinear_quantize import float_casting

    q = aeq.Quantizer(bytearray(model))
    q.load_quantization_recipe([{
        "regex": ".*",
        "operation": "*",
        "algorithm_key": float_casting.ALGORITHM_KEY,
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }])
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a size summary; the result reports sizes
        return bytes(q.quantize().quantized_model)


def tflite_io(model: bytes) -> dict:
    """Input/output tensor facts of a ``.tflite`` (dtype, shape, scale/zero point) and its tensor dtypes."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]

    def quant(d):
        s, z = d["quantization"]
        return QuantParams(scale=float(s), zero_point=int(z)) if s else None

    return {
        "input_dtype": np.dtype(i["dtype"]).name,
        "input_shape": [int(v) for v in i["shape"]],
        "input_quant": quant(i),
        "output_dtype": np.dtype(o["dtype"]).name,
        "output_shape": [int(v) for v in o["shape"]],
        "output_quant": quant(o),
        "tensor_dtypes": sorted({np.dtype(d["dtype"]).name for d in interp.get_tensor_details()}),
    }


def _contract(src: ExportSource, precision: str, io_facts: dict, quantization: str | None) -> dict:
    """``edgerec.json`` inside the ``.tflite``: the shared model card (the same keys and values as ONNX's
    metadata_props and OpenVINO's rt_info), plus what only this file knows, its input and output tensors."""
    from ._card import model_card

    q, oq = io_facts["input_quant"], io_facts["output_quant"]
    return {
        **model_card(src, precision=precision, quantization=quantization),
        "format": "edgerec-tflite/2",
        "input_tensor": {
            "layout": "NHWC",
            "shape": io_facts["input_shape"],
            "dtype": io_facts["input_dtype"],
            "value_range": [0, 255],
            "normalization_in_model": True,
            "quant": {"scale": q.scale, "zero_point": q.zero_point} if q else None,
        },
        "output_tensor": {
            "dtype": io_facts["output_dtype"],
            "quant": {"scale": oq.scale, "zero_point": oq.zero_point} if oq else None,
        },
    }


def _with_metadata(model: bytes, src: ExportSource, contract: dict) -> bytes:
    from . import _tflite_metadata as md

    spec = src.input_spec
    h, w = contract["input_tensor"]["shape"][1:3]
    inputs = [md.TensorInfo(
        name="image",
        description=f"RGB image {w}x{h}, raw pixel values 0..255 (normalisation is inside the model)",
        image_size=(w, h),
        # MediaPipe computes (pixel - mean) / std for float inputs: identity, the model normalises itself.
        mean=(0.0,), std=(1.0,),
        value_range=(0.0, 255.0),
    )]
    outputs = [md.TensorInfo(
        name="logits" if src.task == "single_label" else "scores",
        description="class logits, one per label (softmax for probabilities)"
        if src.task == "single_label" else "per-label logits (sigmoid for probabilities)",
        files=[("labels.txt", "class labels, one per line, in output order", md._FILE_TENSOR_AXIS_LABELS)],
    )]
    meta = md.build_metadata(
        name=src.name,
        description=f"edgerec image classifier ({src.model_name or 'model'}, {contract['precision']}), "
        f"{len(src.labels)} classes, {spec.color_order} {w}x{h} {contract['input_tensor']['layout']}",
        version=str(src.version),
        author="edgerec",
        inputs=inputs,
        outputs=outputs,
        model_files=[("edgerec.json", "edgerec input/output contract and labels (JSON)", md._FILE_DESCRIPTIONS)],
    )
    labels = ("\n".join(src.labels) + "\n").encode()
    manifest = (json.dumps(contract, indent=1) + "\n").encode()
    return md.attach_metadata(model, meta, {"labels.txt": labels, "edgerec.json": manifest})


def read_tflite_metadata(path) -> dict | None:
    """The TFLite metadata of an edgerec (or any) ``.tflite`` as a dict, with ``files`` holding the
    associated files' bytes (``labels.txt``, ``edgerec.json``); None when the model has none."""
    from ._tflite_metadata import read_metadata

    return read_metadata(Path(path).read_bytes())


def export_tflite(src: ExportSource, precision: str, out_dir: Path) -> Artifact:
    """Write ``model_<precision>.tflite`` into ``out_dir`` (NHWC raw-pixel input, metadata with labels).

    >>> res = export_tflite(src, "int8", Path("out"))            # doctest: +SKIP
    >>> res.files, res.input_dtype, res.input_quant              # doctest: +SKIP
    (('model_int8.tflite',), 'uint8', QuantParams(scale=1.0, zero_point=0))
    """
    import torch

    if precision not in PRECISIONS:
        raise ExportError(f"TFLite has no '{precision}' precision", hint=f"use one of: {', '.join(PRECISIONS)}")
    spec = src.input_spec
    if spec.channels != 3:
        raise ExportError(f"TFLite export expects 3-channel input, the model has {spec.channels}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    example = torch.full((1, spec.height, spec.width, 3), 128.0)
    if src.calib_images is not None and len(src.calib_images):
        example = torch.from_numpy(np.asarray(src.calib_images[:1], dtype=np.float32))

    quantization = None
    with torch.no_grad():
        if precision == "int8":
            graph, quantization = _int8_graph(src)
            model = _uint8_io(_convert(_pixel_model(graph, spec, int8_input=True), example, quantized=True))
        else:
            model = _convert(_pixel_model(src.model.eval(), spec, int8_input=False), example, quantized=False)
    if precision == "fp16":
        model = _fp16(model)
    facts = tflite_io(model)
    if precision == "int8" and (facts["input_dtype"], facts["output_dtype"]) != ("uint8", "uint8"):
        raise ExportError(
            f"the int8 TFLite model has {facts['input_dtype']} input and {facts['output_dtype']} output, not uint8",
            hint="the quantized graph lost its input/output quantize ops; re-run QAT/PTQ conversion",
        )
    if facts["input_shape"] != [1, spec.height, spec.width, 3]:
        raise ExportError(f"the TFLite input shape is {facts['input_shape']}, expected [1, {spec.height}, {spec.width}, 3]")

    contract = _contract(src, precision, facts, quantization)
    model = _with_metadata(model, src, contract)
    name = f"model_{precision}.tflite"
    tmp = out_dir / (name + ".tmp")
    tmp.write_bytes(model)
    tmp.replace(out_dir / name)

    from importlib.metadata import version

    converter = f"litert-torch {version('litert-torch')}"
    if precision == "fp16":
        converter += f", ai-edge-quantizer {version('ai-edge-quantizer')} (fp16 weights)"
    return Artifact(
        format="tflite",
        precision=precision,
        files=(name,),
        layout="NHWC",
        input_dtype=facts["input_dtype"],
        output_dtype=facts["output_dtype"],
        input_quant=facts["input_quant"],
        output_quant=facts["output_quant"],
        normalization_in_model=True,
        embedded_preprocess=False,
        output="logits",
        quantization=quantization,
        converter=converter,
    )

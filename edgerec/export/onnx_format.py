"""ONNX: fp32, fp16 and int8 QDQ, opset 18, dynamic batch, labels and input contract in ``metadata_props``.

fp32 and int8 come from the same ``torch.onnx.export(dynamo=True)`` path, int8 from the converted PT2E graph
(QAT or PTQ), so every format's int8 model shares one set of scales. Three clean-ups make the QDQ file what
ONNX Runtime wants:

* weight ``QuantizeLinear`` nodes on constant float weights are folded into int8 initializers
  (the PT2E graph keeps float weights, so without this the "int8" file is as large as the fp32 one);
* activations are re-expressed as **uint8** QDQ (same scale, zero point + 128: identical values), because
  ONNX Runtime's x86 kernels are fast for u8 activations x s8 weights and fall back to slower paths for s8
  activations;
* the exporter's per-node debug metadata (stack traces) is dropped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError
from ..bundle import Artifact
from ._types import ExportSource

__all__ = ["export_onnx", "OPSET", "write_metadata", "fold_weight_quantize", "fold_pads_into_convs",
           "uint8_activations"]

OPSET = 18


def export_onnx(src: ExportSource, precision: str, out_dir: Path, *, opset: int = OPSET,
                int8_activations: str = "uint8") -> Artifact:
    """Write ``model_<precision>.onnx`` into ``out_dir``.

    ``int8_activations``: ``"uint8"`` (default, fastest in ONNX Runtime on x86) or ``"int8"`` (the graph as
    PT2E made it, what ARM NEON kernels prefer).
    """
    import onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if precision == "int8":
        if src.quantized is None:
            raise ExportError("int8 ONNX needs the quantized graph (run with --qat/--ptq, or export with --calib N)")
        model = qdq_model(src, opset)
        if int8_activations == "uint8":
            uint8_activations(model)
        elif int8_activations != "int8":
            raise ExportError(f"int8_activations must be 'uint8' or 'int8', got '{int8_activations}'")
        quantization = src.quant_method or "ptq"
    elif precision in ("fp32", "fp16"):
        model = _torch_to_onnx(src.model, src.example, opset)
        quantization = None
        if precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            # float32 in/out keep the runtime's contract; everything inside is half precision
            model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
            _toposort(model)  # the converter appends its input casts at the end of the node list
    else:
        raise ExportError(f"ONNX has no '{precision}' precision here", hint="use fp32, fp16 or int8")
    _strip_debug_info(model)
    write_metadata(model, src, precision=precision, quantization=quantization, layout="NCHW")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the {precision} ONNX model fails onnx.checker: {exc}") from exc
    name = f"model_{precision}.onnx"
    onnx.save_model(model, str(out_dir / name))
    return Artifact(
        format="onnx",
        precision=precision,
        files=(name,),
        layout="NCHW",
        input_dtype="float32",
        output_dtype="float32",
        normalization_in_model=False,
        quantization=quantization,
        converter=f"torch.onnx (dynamo) {_version('torch')}, onnx {onnx.__version__}, opset {opset}",
    )


def qdq_model(src: ExportSource, opset: int = OPSET):
    """The quantized graph as QDQ ONNX with int8 weights folded (a fresh copy; built once per source).

    The OpenVINO exporter reads the same model, so the export happens once per ``edgerec export``.
    """
    import onnx

    cached = src.extra.get("qdq_onnx")
    if cached is None or cached[0] != opset:
        model = _torch_to_onnx(src.quantized, src.example, opset)
        fold_weight_quantize(model)
        fold_pads_into_convs(model)
        _strip_debug_info(model)
        src.extra["qdq_onnx"] = cached = (opset, model)
    copy = onnx.ModelProto()
    copy.CopyFrom(cached[1])
    return copy


def _version(module: str) -> str:
    import importlib

    return getattr(importlib.import_module(module), "__version__", "?")


def _torch_to_onnx(module, example, opset: int):
    import torch

    # torch.export specialises a size-1 batch; trace with two images and mark the batch dynamic
    x = example if example.shape[0] > 1 else example.repeat(2, 1, 1, 1)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.onnx.export(
            module, (x,), dynamo=True, external_data=False, opset_version=opset,
            input_names=["input"], output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False,
        )
    except Exception as exc:  # the exporter raises torch, onnxscript and ONNX errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {first}") from exc
    return program.model_proto


def _strip_debug_info(model) -> None:
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for vi in model.graph.value_info:
        del vi.metadata_props[:]


def write_metadata(model, src: ExportSource, *, precision: str, quantization: str | None, layout: str) -> None:
    """Labels and the full input contract into ``metadata_props`` (what Netron and ORT's modelmeta show)."""
    from .. import __version__
    from ._card import model_card

    props = {**model_card(src, precision=precision, quantization=quantization),
             "layout": layout, "normalization_in_model": "false"}
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    model.producer_name = "edgerec"
    model.producer_version = __version__
    model.doc_string = f"{src.name} {src.version}: {len(src.labels)}-class {src.task} classifier ({precision})"


def _initializers(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def fold_weight_quantize(model) -> int:
    """``QuantizeLinear(constant float W)`` -> an int8 initializer; returns how many were folded.

    The ``Clip`` the exporter puts after each weight's quantize (PT2E's weight range is -127..127, one short
    of int8's) is folded into that initializer too. Left in, OpenVINO cannot see a constant int8 weight
    behind the DequantizeLinear: it ran all 49 convolutions of EfficientNet-Lite0's int8 IR in f32/bf16 on
    weights dequantized at every inference.
    """
    import numpy as np
    from onnx import numpy_helper

    value = _constant_lookup(model)
    keep, folded = [], 0
    new_inits = []
    ints: dict = {}  # folded int8 weights by name, for the Clip after them
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and value(node.input[0]) is not None:
            w = value(node.input[0]).astype(np.float32)
            scale = value(node.input[1])
            zp = value(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
            if scale is not None and zp is not None:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                shape = [1] * w.ndim
                if scale.ndim == 1 and scale.size > 1:
                    shape[axis] = scale.size
                info = np.iinfo(zp.dtype)
                q = np.rint(w / scale.reshape(shape)) + zp.astype(np.int32).reshape(shape)
                q = np.clip(q, info.min, info.max).astype(zp.dtype)
                new_inits.append(numpy_helper.from_array(q, node.output[0]))
                ints[node.output[0]] = q
                folded += 1
                continue
        if node.op_type == "Clip" and node.input[0] in ints:
            names = (list(node.input[1:3]) + ["", ""])[:2]  # min, max; either may be absent
            bounds = [value(b) if b else None for b in names]
            if all(b is not None for b, name in zip(bounds, names) if name):
                q = ints[node.input[0]]
                clipped = np.clip(q, *bounds).astype(q.dtype) if any(b is not None for b in bounds) else q
                new_inits.append(numpy_helper.from_array(clipped, node.output[0]))
                ints[node.output[0]] = clipped
                continue
        keep.append(node)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(keep)
        model.graph.initializer.extend(new_inits)
        _drop_unused(model)
    return folded


def fold_pads_into_convs(model) -> int:
    """A constant zero ``Pad`` of the spatial axes before a ``Conv`` -> the conv's own ``pads``; returns the count.

    EfficientNet-Lite's TensorFlow ``SAME`` padding is such a pad on its five strided layers. The fp32 export
    folds it already; in the QDQ graph it sits between quantize/dequantize pairs (DequantizeLinear -> Pad ->
    QuantizeLinear -> DequantizeLinear -> Conv) with the same scale and zero point on both sides
    (``edgerec.train.qat`` shares them), and ONNX Runtime ran each of those as a float dequantize, pad and
    quantize of a whole feature map. A convolution pads with real zero (``QLinearConv`` with the input's
    zero point), so folding is exact: the conv reads the first dequantize and pads itself.
    """
    value = _constant_lookup(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    readers = _reader_counts(model)
    drop: set[str] = set()  # outputs of the nodes folded away
    folded = 0
    for conv in model.graph.node:
        attrs = {a.name: a for a in conv.attribute}
        if conv.op_type != "Conv" or ("auto_pad" in attrs and attrs["auto_pad"].s not in (b"", b"NOTSET")):
            continue
        chain = _pad_chain(conv, producer, readers, value)
        extra = _spatial_zero_pad(chain[0], value) if chain else None  # top, left, bottom, right: Conv's 2-D order
        if extra is None or not _add_conv_pads(conv, attrs, extra):
            continue
        conv.input[0] = chain[0].input[0]
        drop.update(n.output[0] for n in chain)
        folded += 1
    if folded:
        nodes = [n for n in model.graph.node if not n.output or n.output[0] not in drop]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        _drop_unused(model)
    return folded


def _constant_lookup(model):
    """A function from a tensor name to its value (an initializer or a ``Constant`` output), None if computed."""
    from onnx import numpy_helper

    inits = _initializers(model)
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}

    def value(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return consts.get(name)

    return value


def _reader_counts(model) -> dict[str, int]:
    """How many node inputs and graph outputs read each tensor."""
    readers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    for o in model.graph.output:
        readers[o.name] = readers.get(o.name, 0) + 1
    return readers


def _pad_chain(conv, producer: dict, readers: dict[str, int], value) -> list | None:
    """The nodes a fold removes before ``conv``, the ``Pad`` first; None when there are none.

    Either ``[Pad]`` feeding the conv directly, or ``[Pad, QuantizeLinear, DequantizeLinear]`` when the pad sits
    between QDQ pairs with one scale and zero point on both sides. Each tensor in the chain has one reader only.
    """
    def only_reader(name):
        return readers.get(name, 0) == 1

    source = producer.get(conv.input[0])
    if source is not None and source.op_type == "DequantizeLinear" and only_reader(conv.input[0]):
        q = producer.get(source.input[0])
        pad = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        first = producer.get(pad.input[0]) if pad is not None and pad.op_type == "Pad" else None
        if (first is None or first.op_type != "DequantizeLinear" or not _same_quant(first, q, value)
                or not _same_quant(q, source, value) or not only_reader(q.output[0])
                or not only_reader(pad.output[0])):
            return None
        return [pad, q, source]
    if source is not None and source.op_type == "Pad" and only_reader(conv.input[0]):
        return [source]
    return None


def _same_quant(a, b, value) -> bool:
    """Whether two quantize/dequantize nodes have equal constant scales and zero points."""
    import numpy as np

    va, vb = [value(n) for n in a.input[1:3]], [value(n) for n in b.input[1:3]]
    return len(va) == len(vb) and all(x is not None and y is not None and x.dtype == y.dtype
                                      and np.array_equal(x, y) for x, y in zip(va, vb))


def _spatial_zero_pad(pad, value) -> list[int] | None:
    """(top, left, bottom, right) of a constant zero pad of H and W only, else None."""
    import numpy as np

    mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
    if mode != "constant" or len(pad.input) > 3 and pad.input[3]:  # no axes input: all axes listed
        return None
    if len(pad.input) > 2 and pad.input[2]:
        fill = value(pad.input[2])
        if fill is None or np.any(fill != 0):
            return None
    pads = value(pad.input[1])
    if pads is None or pads.shape != (8,) or np.any(pads < 0) or np.any(pads[[0, 1, 4, 5]] != 0):
        return None
    return [int(v) for v in pads[[2, 3, 6, 7]]]


def _add_conv_pads(conv, attrs: dict, extra: list[int]) -> bool:
    """Adds ``extra`` to a 2-D conv's ``pads``; False, with the conv unchanged, when its pads are not 2-D."""
    from onnx import helper

    old = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
    if len(old) != 4:
        return False
    new = [a + b for a, b in zip(old, extra)]
    if "pads" in attrs:
        attrs["pads"].ints[:] = new
    else:
        conv.attribute.append(helper.make_attribute("pads", new))
    return True


def uint8_activations(model) -> int:
    """Per-tensor int8 activation QDQ -> uint8 with zero point + 128 (same real values); returns the count.

    Only ``QuantizeLinear`` nodes on computed tensors change (weights stay symmetric int8); each
    ``DequantizeLinear`` reading such a tensor gets the matching uint8 zero point.
    """
    import numpy as np
    from onnx import numpy_helper

    inits = _initializers(model)
    changed: dict[str, str] = {}  # old zero-point name -> uint8 twin
    q_outputs: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        zp_name = node.input[2]
        zp = inits.get(zp_name)
        if zp is None or node.input[0] in inits:
            continue
        arr = numpy_helper.to_array(zp)
        if arr.dtype != np.int8 or arr.size != 1:
            continue
        if zp_name not in changed:
            twin = zp_name + "_u8"
            model.graph.initializer.append(numpy_helper.from_array((arr.astype(np.int16) + 128).astype(np.uint8), twin))
            changed[zp_name] = twin
        node.input[2] = changed[zp_name]
        q_outputs.add(node.output[0])
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in q_outputs and len(node.input) > 2:
            if node.input[2] in changed:
                node.input[2] = changed[node.input[2]]
            else:
                arr = numpy_helper.to_array(inits[node.input[2]])
                twin = node.input[2] + "_u8"
                model.graph.initializer.append(numpy_helper.from_array((arr.astype(np.int16) + 128).astype(np.uint8), twin))
                changed[node.input[2]] = twin
                node.input[2] = twin
    # the exporter's recorded int8 types of those tensors are stale now; shape inference redoes them
    keep = [vi for vi in model.graph.value_info if vi.name not in q_outputs]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    _drop_unused(model)
    return len(q_outputs)


def _toposort(model) -> None:
    produced = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    pending, ordered = list(model.graph.node), []
    while pending:
        ready = [n for n in pending if all(i in produced for i in n.input)]
        if not ready:
            raise ExportError("the fp16 ONNX graph has a cycle or a dangling input")
        for n in ready:
            ordered.append(n)
            produced.update(n.output)
        ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del model.graph.node[:]
    model.graph.node.extend(copies)


def _drop_unused(model) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    nodes = [n for n in model.graph.node if n.op_type != "Constant" or n.output[0] in used]
    if len(nodes) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(nodes)

"""PT2E quantization: the one place that knows how a float model becomes an int8 graph.

Every exported int8 artifact (TFLite, QDQ ONNX, OpenVINO) starts from the graph made here, so the scheme is
the one all of them share: symmetric per-channel int8 weights (range -127..127), per-tensor affine int8
activations (-128..127), as TFLite/XNNPACK expect.

Quantization-aware training (QAT)::

    gm = qat.prepare(model, example, qat=True)     # fake-quant in the graph, train gm like a model
    for step, (x, y) in enumerate(loader):
        if step == freeze_step:
            qat.freeze(gm)                         # late phase: fixed ranges and BN statistics
        ...
    qat.move_to_eval(gm)
    q = qat.convert(gm)                            # int8 reference graph (quantize/dequantize ops)
    qat.save_quantized(q, example, run / "quantized.pt2")

Post-training quantization (PTQ)::

    gm = qat.prepare(model.eval(), example, qat=False)
    qat.calibrate(gm, batches)
    q = qat.convert(gm)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ConfigError, ModelError, suggest

__all__ = [
    "QUANTIZERS",
    "DEFAULT_QUANTIZER",
    "get_quantizer",
    "quantizer_scheme",
    "prepare",
    "freeze",
    "move_to_eval",
    "move_to_train",
    "calibrate",
    "convert",
    "save_quantized",
    "load_quantized",
    "describe",
]

# Chosen by benchmarks/quantizer_compare.py (QAT on digits): see docs/quantization.md.
DEFAULT_QUANTIZER = "xnnpack"

_META_KEY = "edgerec_quant"


def _xnnpack(qat: bool):
    # torchao keeps the reference XNNPACK quantizer under testing/ (executorch holds the maintained copy);
    # it warns that it is deprecated on every construction, which says nothing useful to our users.
    import warnings

    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantizer = XNNPACKQuantizer()
    return quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))


def _litert(qat: bool):
    from ._compat import apply_litert_conv_bn_fix

    apply_litert_conv_bn_fix()  # annotation of conv-bn patterns fails without it on litert-torch 0.10
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))


QUANTIZERS: dict[str, Callable[[bool], Any]] = {"xnnpack": _xnnpack, "litert": _litert}


def _with_shared_pads(quantizer):
    """``quantizer`` plus one rule: a constant zero pad keeps its input's quantization parameters.

    Neither quantizer annotates ``F.pad``, so PT2E leaves it in float between a dequantize and a quantize
    with ranges of its own: a float island, and a requantize of every padded tensor (one int8 -> int8
    QUANTIZE op each in the LiteRT model). Zero is exact in any affine int8 scheme, so the pad can share its
    input's scale and zero point; on the network input (not yet quantized) the pad's input edge gets the
    activation spec and the pad shares it. (TensorFlow "SAME" padding of EfficientNet-Lite's strided
    layers is such a pad.)
    """
    import torch
    from torchao.quantization.pt2e.quantizer import (
        ComposableQuantizer,
        QuantizationAnnotation,
        Quantizer,
        SharedQuantizationSpec,
    )

    pads = (torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default)
    act = quantizer.global_config.input_activation

    class _SharedPad(Quantizer):
        def annotate(self, model):
            for n in model.graph.nodes:
                if n.op != "call_function" or n.target not in pads or "quantization_annotation" in n.meta:
                    continue
                mode = n.args[2] if len(n.args) > 2 else n.kwargs.get("mode", "constant")
                value = n.args[3] if len(n.args) > 3 else n.kwargs.get("value", 0)
                inp = n.args[0]
                if mode != "constant" or value not in (None, 0, 0.0) or not isinstance(inp, torch.fx.Node):
                    continue
                prev = inp.meta.get("quantization_annotation")
                if prev is not None and prev.output_qspec is not None:
                    spec = SharedQuantizationSpec(inp)
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={inp: spec}, output_qspec=spec, _annotated=True)
                else:
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={inp: act}, output_qspec=SharedQuantizationSpec((inp, n)), _annotated=True)
            return model

        def validate(self, model):
            pass

    return ComposableQuantizer([quantizer, _SharedPad()])


def _with_fused_relu6(quantizer):
    """``quantizer`` with ReLU6 fused into the conv (or linear) before it, as it already fuses ReLU.

    Both quantizers fuse conv[-bn]-ReLU (one int8 output, after the ReLU) but not conv[-bn]-ReLU6
    (``hardtanh(0, 6)``): the conv output gets its own int8 range and the ReLU6 then shares it, so the
    activation spends most of its 256 levels on values ReLU6 clamps away, and every exported graph holds a
    requantizing clamp in float (33 ``Clip`` ops between DequantizeLinear and QuantizeLinear in
    EfficientNet-Lite0's ONNX, which ONNX Runtime runs in float). Here the conv's output is left
    unquantized and the ReLU6 output gets the activation spec: the conv-bn-ReLU pattern with ReLU6, which
    LiteRT, ONNX Runtime and OpenVINO each fold into one int8 convolution.
    """
    import dataclasses
    import operator

    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, Quantizer, SharedQuantizationSpec

    aten = torch.ops.aten
    relu6 = (aten.hardtanh.default, aten.hardtanh_.default)
    producers = {aten.conv2d.default, aten.convolution.default, aten.linear.default, aten.batch_norm.default,
                 aten._native_batch_norm_legit.default, aten._native_batch_norm_legit_no_training.default}
    act = quantizer.global_config.output_activation

    def producer(node):
        """The conv/linear (or its BatchNorm) whose output ``node`` reads, else None."""
        if node.op != "call_function":
            return None
        if node.target is operator.getitem:  # BatchNorm's output tuple
            return producer(node.args[0]) and node
        return node if node.target in producers else None

    class _FusedReLU6(Quantizer):
        def __init__(self):
            super().__init__()
            self.global_config = quantizer.global_config

        def transform_for_annotation(self, model):
            return quantizer.transform_for_annotation(model)

        def annotate(self, model):
            quantizer.annotate(model)
            for n in model.graph.nodes:
                if n.op != "call_function" or n.target not in relu6:
                    continue
                lo = n.args[1] if len(n.args) > 1 else n.kwargs.get("min_val", -1.0)
                hi = n.args[2] if len(n.args) > 2 else n.kwargs.get("max_val", 1.0)
                prev = n.args[0]
                if (lo, hi) != (0.0, 6.0) or not isinstance(prev, torch.fx.Node) or producer(prev) is None:
                    continue
                mine, theirs = n.meta.get("quantization_annotation"), prev.meta.get("quantization_annotation")
                if theirs is None or theirs.output_qspec is None or len(prev.users) != 1:
                    continue
                if mine is not None and not isinstance(mine.output_qspec, SharedQuantizationSpec):
                    continue  # annotated on purpose by the quantizer: leave it
                prev.meta["quantization_annotation"] = dataclasses.replace(theirs, output_qspec=None)
                n.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=act, _annotated=True)
            return model

        def validate(self, model):
            quantizer.validate(model)

    return _FusedReLU6()


def get_quantizer(kind: str = DEFAULT_QUANTIZER, *, qat: bool = True):
    """The PT2E quantizer ``kind`` (``"xnnpack"``: torchao's XNNPACKQuantizer, ``"litert"``: litert-torch's
    PT2EQuantizer), set to symmetric per-channel int8 weights and per-tensor int8 activations."""
    if kind not in QUANTIZERS:
        raise ConfigError(f"unknown quantizer '{kind}'{suggest(kind, QUANTIZERS)}")
    return QUANTIZERS[kind](qat)


def quantizer_scheme(quantizer) -> dict:
    """The weight and activation scheme a quantizer applies, as plain values (for manifests and tests)."""
    import torch

    config = quantizer.global_config
    if config is None:
        raise ConfigError("the quantizer has no global config", hint="call quantizer.set_global(config)")

    def spec(s):
        if s is None:
            return None
        per_channel = s.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
        symmetric = s.qscheme in (torch.per_channel_symmetric, torch.per_tensor_symmetric)
        return {
            "dtype": str(s.dtype).replace("torch.", ""),
            "quant_min": s.quant_min,
            "quant_max": s.quant_max,
            "granularity": "per_channel" if per_channel else "per_tensor",
            "symmetric": symmetric,
            "ch_axis": s.ch_axis if per_channel else None,
        }

    return {
        "weight": spec(config.weight),
        "input_activation": spec(config.input_activation),
        "output_activation": spec(config.output_activation),
        "qat": bool(config.is_qat),
    }


def _as_args(example) -> tuple:
    import torch

    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example):
        return tuple(example)
    raise ConfigError(
        f"example must be a torch.Tensor (1, 3, H, W) or a tuple of tensors, got {type(example).__name__}"
    )


def _export_batch_dynamic(module, args: tuple):
    """``torch.export.export`` with a free batch dimension.

    torch.export specialises a size-1 dimension, and training-mode BatchNorm on a 1x1 feature map needs more
    than one value per channel, so a batch of one is traced as a batch of two.
    """
    import torch

    traced = tuple(a.repeat(2, *([1] * (a.dim() - 1))) if a.shape[0] == 1 else a for a in args)
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(module, traced, dynamic_shapes=tuple({0: batch} for _ in args))


def prepare(model, example, *, qat: bool, kind: str = DEFAULT_QUANTIZER):
    """Export ``model`` with ``torch.export`` and insert fake-quant (``qat=True``) or observers (PTQ).

    ``example`` is a normalised (1, 3, H, W) float tensor. The returned ``torch.fx.GraphModule`` is trained
    (QAT) or calibrated (PTQ) like the model, then passed to :func:`convert`. The batch size of ``example``
    is not baked in: the export marks it dynamic so training batches of any size go through.
    """
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    args = _as_args(example)
    quantizer = get_quantizer(kind, qat=qat)
    model.train(qat)  # QAT captures training-mode BatchNorm so conv-bn folding is simulated while training
    try:
        exported = _export_batch_dynamic(model, args).module()
    except Exception as exc:  # torch.export raises many unrelated types (UserError, Unsupported, ...)
        raise ModelError(
            f"torch.export could not capture {type(model).__name__} for quantization: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}",
            hint="quantize a torchvision model from edgerec.train.models, or train without --qat/--ptq",
        ) from exc
    quantizer = _with_shared_pads(_with_fused_relu6(quantizer))
    gm = prepare_qat_pt2e(exported, quantizer) if qat else prepare_pt2e(exported, quantizer)
    _remember_bn_constants(gm, model)
    gm.meta[_META_KEY] = {
        "method": "qat" if qat else "ptq",
        "quantizer": kind,
        "example_shape": list(args[0].shape),
    }
    return gm


# torchao's BatchNorm rewrites (the QAT conv-bn fusion, move_exported_model_to_train/eval) match patterns with
# ignore_literals and write the pattern's own momentum 0.1 and eps 1e-5 into the graph ("fails to support custom
# momentum and eps", export_utils._replace_batchnorm in torchao 0.18). EfficientNet-Lite and MobileNetV3 use
# eps 1e-3: with 1e-5 the QAT graph is another model than the float one (channels of small variance are scaled
# up), and that eps is folded into the int8 weights. Each BatchNorm's own constants are put back after every
# rewrite, keyed by the name of its running-mean buffer (the rewrites keep those nodes).
_BN_CONSTANTS = "_edgerec_bn_constants"
_BN_FROZEN = "_edgerec_bn_frozen"


def _bn_nodes(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function" and "batch_norm" in str(n.target)]


def _bn_key(node) -> str | None:
    mean = node.args[3] if len(node.args) > 3 else node.kwargs.get("running_mean")
    return mean.target if getattr(mean, "op", None) == "get_attr" else None


def _remember_bn_constants(gm, model) -> None:
    """Record every graph BatchNorm's (momentum, eps) from ``model``'s modules, matched by running-mean values."""
    import operator

    import torch

    mods = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    everyone = {(m.momentum, m.eps) for m in mods}
    consts = {}
    for node in _bn_nodes(gm):
        key = _bn_key(node)
        if key is None:
            continue
        buf = operator.attrgetter(key)(gm)
        found = {(m.momentum, m.eps) for m in mods if m.running_mean is not None
                 and m.running_mean.shape == buf.shape and torch.equal(m.running_mean, buf)}
        if len(found) == 1 or len(everyone) == 1:
            consts[key] = next(iter(found if len(found) == 1 else everyone))
    setattr(gm, _BN_CONSTANTS, consts)
    _restore_bn_constants(gm)


def _restore_bn_constants(gm) -> None:
    """Write the recorded momentum (0 once frozen) and eps back into every BatchNorm node of ``gm``."""
    consts = getattr(gm, _BN_CONSTANTS, None)
    if not consts:
        return
    frozen = getattr(gm, _BN_FROZEN, False)
    changed = False
    for node in _bn_nodes(gm):
        want = consts.get(_bn_key(node))
        if want is None:
            continue
        momentum, eps = want
        changed |= _set_arg(node, "momentum", 0.0 if frozen else (momentum if momentum is not None else 0.1))
        changed |= _set_arg(node, "eps", float(eps))
        # the QAT conv-bn fusion scales the conv by 1/sqrt(running_var + eps) with the eps as a literal too
        var = node.args[4] if len(node.args) > 4 else node.kwargs.get("running_var")
        for user in list(getattr(var, "users", ())):
            if "add" in str(user.target) and len(user.args) == 2 and user.args[0] is var \
                    and isinstance(user.args[1], float):
                user.args = (var, float(eps))
                changed = True
    if changed:
        gm.recompile()


def _set_arg(node, name: str, value) -> bool:
    """Set a call node's argument ``name`` (by the op's schema); True when the node has it."""
    names = [a.name for a in getattr(node.target, "_schema").arguments]
    if name not in names:
        return False
    i = names.index(name)
    if i < len(node.args):
        args = list(node.args)
        args[i] = value
        node.args = tuple(args)
    else:
        node.kwargs = {**node.kwargs, name: value}
    return True


def freeze(gm, *, observers: bool = True, bn: bool = True):
    """Late QAT phase: stop updating quantization ranges (``observers``) and BatchNorm running statistics
    (``bn``, momentum set to 0 in the graph). Returns ``gm`` (changed in place)."""
    if observers:
        from torchao.quantization.pt2e import disable_observer

        gm.apply(disable_observer)
    if bn:
        setattr(gm, _BN_FROZEN, True)  # kept through later train/eval switches (_restore_bn_constants)
        changed = False
        for node in _bn_nodes(gm):
            changed |= _set_arg(node, "momentum", 0.0)
        if changed:
            gm.recompile()
    return gm


def move_to_eval(gm):
    """Switch an exported graph's dropout and BatchNorm to inference behaviour (``gm.eval()`` does not)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(gm)
    _restore_bn_constants(gm)
    return gm


def _for_inference(gm):
    """Inference behaviour (``move_to_eval``) and ``training = False`` on every submodule. torchao's ``eval()`` on
    an exported graph switches the ops but leaves the flag, and the LiteRT and ONNX exporters read the flag: each
    int8 export warned "converted in training mode" about a graph that was not."""
    move_to_eval(gm)
    for m in gm.modules():
        m.training = False
    return gm


def move_to_train(gm):
    """Switch an exported graph's dropout and BatchNorm back to training behaviour."""
    from torchao.quantization.pt2e import move_exported_model_to_train

    move_exported_model_to_train(gm)
    _restore_bn_constants(gm)
    return gm


def calibrate(gm, batches: Iterable, *, progress: bool = False) -> int:
    """Run float batches (N, 3, H, W), normalised, through a PTQ-prepared graph so observers see the ranges.

    ``batches`` may yield tensors or ``(tensor, label)`` pairs. Returns the number of images seen.
    """
    import torch

    move_to_eval(gm)
    seen = 0
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="calibrate", unit="batch", leave=False)
    with torch.no_grad():
        for batch in iterator:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(x, torch.Tensor):
                x = torch.as_tensor(x)
            gm(x.float())
            seen += int(x.shape[0])
    if seen == 0:
        raise ConfigError("calibration got no images", hint="pass a non-empty calibration set (--calib N with N > 0)")
    return seen


def convert(gm):
    """Fake-quant/observers -> int8 reference graph (``convert_pt2e``), in eval mode.

    Weights are kept as float constants followed by quantize/dequantize pairs (``fold_quantize=False``): the
    LiteRT converter only recognises that form as a quantized weight, and ONNX/OpenVINO read it as QDQ too.
    """
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    meta = dict(gm.meta.get(_META_KEY, {}))
    move_to_eval(gm)
    q = convert_pt2e(gm, fold_quantize=False)
    allow_exported_model_train_eval(q)  # so a wrapper's .eval() reaches it without raising
    _for_inference(q)
    if meta:
        q.meta[_META_KEY] = meta
    return q


def describe(gm) -> dict:
    """``{"method", "quantizer", "example_shape"}`` recorded by :func:`prepare` (what ``quantized.json`` holds)."""
    meta = gm.meta.get(_META_KEY)
    if not meta:
        raise ModelError("this graph was not prepared by edgerec.train.qat.prepare, so its method is unknown")
    return dict(meta)


def save_quantized(gm, example, path) -> Path:
    """``torch.export.save`` the converted graph to ``path`` (``.pt2``), written atomically."""
    import torch

    path = Path(path)
    args = _as_args(example)
    ep = _export_batch_dynamic(gm, args)
    tmp = path.with_name(path.stem + ".tmp.pt2")  # torch.export.save warns unless the name ends in .pt2
    torch.export.save(ep, tmp)
    tmp.replace(path)
    return path


def load_quantized(path):
    """The converted int8 graph saved by :func:`save_quantized`, as a ``torch.fx.GraphModule`` in eval mode."""
    import torch

    # Registers the quantized_decomposed ops the saved graph refers to; torch.export.load fails without it.
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"quantized graph not found: {path}", hint="train with --qat or --ptq to create it")
    try:
        gm = torch.export.load(path).module()
    except Exception as exc:  # torch.export.load raises zipfile, pickle and runtime errors
        raise ModelError(f"{path} is not a readable torch.export archive: {exc.__class__.__name__}: {exc}") from exc
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    return _for_inference(allow_exported_model_train_eval(gm))

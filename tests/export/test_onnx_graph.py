"""The ONNX QDQ clean-ups on a hand-built graph: same outputs, int8 weights stored, uint8 activations."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgerec.export.onnx_format import fold_pads_into_convs, fold_weight_quantize, uint8_activations

ort = pytest.importorskip("onnxruntime")


def _qdq_model(act_zp=3, per_channel=True):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    ws = (np.abs(w).max(axis=0) / 127).astype(np.float32) if per_channel else np.float32(np.abs(w).max() / 127)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.asarray(ws, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(np.shape(ws), np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
        numpy_helper.from_array(np.array(act_zp, np.int8), "a_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_scale", "a_zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "a_scale", "a_zp"], ["xd"]),
        helper.make_node("QuantizeLinear", ["W", "w_scale", "w_zp"], ["wq"], axis=1),
        helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zp"], ["wd"], axis=1),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("per_channel", [True, False])
def test_fold_weight_quantize_stores_int8_and_keeps_outputs(per_channel):
    m = _qdq_model(per_channel=per_channel)
    x = np.random.default_rng(1).uniform(-2, 2, size=(5, 4)).astype(np.float32)
    before = _run(m, x)
    assert fold_weight_quantize(m) == 1
    onnx.checker.check_model(m, full_check=True)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    assert "W" not in inits and inits["wq"].dtype == np.int8  # float weights gone, int8 stored
    assert [n.op_type for n in m.graph.node].count("QuantizeLinear") == 1  # only the activation one is left
    np.testing.assert_allclose(_run(m, x), before, rtol=0, atol=1e-6)


def test_uint8_activations_are_the_same_values():
    m = _qdq_model(act_zp=-5)
    fold_weight_quantize(m)
    x = np.random.default_rng(2).uniform(-2.5, 2.5, size=(7, 4)).astype(np.float32)
    before = _run(m, x)
    assert uint8_activations(m) == 1
    onnx.checker.check_model(m, full_check=True)
    q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear")
    zp = numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == q.input[2]))
    assert zp.dtype == np.uint8 and int(zp) == 123  # -5 + 128
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    assert dq.input[2] == q.input[2]
    np.testing.assert_allclose(_run(m, x), before, rtol=0, atol=1e-6)
    # weights stay symmetric int8
    wq = numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == "wq"))
    assert wq.dtype == np.int8


def test_fold_weight_quantize_folds_the_clip_behind_it():
    """torch.onnx writes PT2E's -127..127 weight range as QuantizeLinear -> Clip: both become one initializer."""
    m = _qdq_model()
    inits = [numpy_helper.from_array(np.array(-127, np.int8), "lo"), numpy_helper.from_array(np.array(127, np.int8), "hi")]
    m.graph.initializer.extend(inits)
    wdq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "wq")
    wdq.input[0] = "wq_clipped"
    nodes = list(m.graph.node)
    nodes.insert(3, helper.make_node("Clip", ["wq", "lo", "hi"], ["wq_clipped"]))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.checker.check_model(m, full_check=True)
    x = np.random.default_rng(3).uniform(-2, 2, size=(5, 4)).astype(np.float32)
    before = _run(m, x)
    assert fold_weight_quantize(m) == 1
    onnx.checker.check_model(m, full_check=True)
    assert [n.op_type for n in m.graph.node] == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "MatMul"]
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    assert inits["wq_clipped"].dtype == np.int8 and "wq" not in inits
    np.testing.assert_array_equal(_run(m, x), before)


def _pad_conv_model(*, qdq=True, pads=(0, 0, 0, 0, 0, 0, 1, 1), mode="constant", value=None):
    """x -> [Q DQ] Pad [Q DQ] -> Conv 3x3 stride 2 (int8 weights through a DequantizeLinear)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    inits = [
        numpy_helper.from_array(w, "wq"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.05, np.float32), "a_scale"),
        numpy_helper.from_array(np.array(-20, np.int8), "a_zp"),
        numpy_helper.from_array(np.array(0.05, np.float32), "a_scale2"),  # the same values under another name
        numpy_helper.from_array(np.array(-20, np.int8), "a_zp2"),
        numpy_helper.from_array(np.array(pads, np.int64), "pads"),
    ]
    pad_inputs = ["xd" if qdq else "x", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "fill"))
        pad_inputs.append("fill")
    nodes = [helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zp"], ["wd"], axis=0)]
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["x", "a_scale", "a_zp"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "a_scale", "a_zp"], ["xd"])]
    nodes.append(helper.make_node("Pad", pad_inputs, ["p"], mode=mode))
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["p", "a_scale2", "a_zp2"], ["pq"]),
                  helper.make_node("DequantizeLinear", ["pq", "a_scale2", "a_zp2"], ["pd"])]
    nodes.append(helper.make_node("Conv", ["pd" if qdq else "p", "wd"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 0, 0, 0]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("qdq", [True, False])
def test_fold_pads_into_convs_is_exact(qdq):
    """A zero pad of H/W before a conv (EfficientNet-Lite's SAME pads, between Q/DQ pairs in int8) becomes
    the conv's own padding: same outputs, no Pad and no float dequantize/quantize around it."""
    m = _pad_conv_model(qdq=qdq, pads=(0, 0, 1, 0, 0, 0, 2, 1), value=0.0)
    x = np.random.default_rng(4).uniform(-3, 3, size=(2, 3, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    before = sess.run(None, {"x": x})[0]
    assert fold_pads_into_convs(m) == 1
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert "Pad" not in ops and ops.count("QuantizeLinear") == (1 if qdq else 0)
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [2, 0, 2, 1]  # top, left, bottom, right
    after = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("change", [{"mode": "reflect"}, {"value": 1.0}, {"pads": (0, 1, 0, 0, 0, 0, 1, 1)}])
def test_fold_pads_into_convs_leaves_other_pads(change):
    m = _pad_conv_model(**change)
    assert fold_pads_into_convs(m) == 0
    assert [n.op_type for n in m.graph.node].count("Pad") == 1

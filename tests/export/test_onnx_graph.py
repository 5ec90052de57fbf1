"""The ONNX QDQ clean-ups on a hand-built graph: same outputs, int8 weights stored, uint8 activations."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgerec.export.onnx_format import fold_weight_quantize, uint8_activations

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

"""EfficientNet-Lite0 (TensorFlow "SAME" padding) through all three formats at fp32 and int8, verified."""

import pytest

pytest.importorskip("torch")

# six conversions of the default backbone (about 95 s): an acceptance run, in `make test-all`. `make test` keeps
# EfficientNet-Lite0's transfer + QAT (tests/train/test_efficientnet_lite.py) and its int8 pads.
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def lite_bundle(tmp_path_factory):
    from _fixtures.export import export_run, make_digits_run

    root = tmp_path_factory.mktemp("lite")
    run = make_digits_run(root, per_class=12, steps=30, size=64, model="efficientnet_lite0")
    # a 30-step model: its int8 accuracy bound is loosened, as for tiny_bundle. About a minute on two idle
    # cores (six conversions, each verified); the timeout leaves room for a loaded machine.
    return export_run(run, root / "bundle", formats=("tflite", "onnx", "openvino"), precisions=("fp32", "int8"),
                      max_int8_drop=10.0, calib=24, max_eval=40)


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("fmt", ["tflite", "onnx", "openvino"])
@pytest.mark.parametrize("prec", ["fp32", "int8"])
def test_lite0_exports_and_verifies(lite_bundle, fmt, prec):
    a = lite_bundle.manifest.artifact(fmt, prec)
    assert a.status == "ok", a.error
    assert a.verification.passed and a.verification.n_images > 0
    if prec == "fp32":
        assert a.verification.agreement >= 0.99


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_lite0_int8_tflite_has_no_float_island(lite_bundle):
    """The SAME pads stay int8: the only (de)quantize ops are the model's input and output."""
    from ai_edge_litert.interpreter import Interpreter

    a = lite_bundle.manifest.artifact("tflite", "int8")
    it = Interpreter(str(lite_bundle.dir / a.file))
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    pads = [o for o in ops if o["op_name"] in ("PAD", "PADV2")]
    assert all(tensors[o["inputs"][0]]["dtype"].__name__ == "int8" for o in pads)
    requantize = [o for o in ops if o["op_name"] == "QUANTIZE" and tensors[o["inputs"][0]]["dtype"].__name__ == "int8"
                  and tensors[o["outputs"][0]]["dtype"].__name__ == "int8"]
    assert not requantize
    assert sum(o["op_name"] == "DEQUANTIZE" for o in ops) <= 1  # the uint8 pixel input only


def test_openvino_trace_folds_same_padding_into_the_convs():
    """openvino.convert_model traces with TorchScript: the SAME pads must be constants it folds away."""
    import collections

    import torch

    ov = pytest.importorskip("openvino")
    from edgerec.train.models import build_model

    torch.set_num_threads(1)
    model = build_model("efficientnet_lite0", 4).eval()
    converted = ov.convert_model(model, example_input=torch.randn(1, 3, 32, 32))
    ops = collections.Counter(op.get_type_name() for op in converted.get_ordered_ops())
    assert ops["ShapeOf"] == 0  # no pad computed from the input's shape at run time
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_NUM_THREADS": 1})
    runtime = collections.Counter(op.get_rt_info()["layerType"].astype(str)
                                  for op in compiled.get_runtime_model().get_ordered_ops())
    assert runtime["Pad"] == 0 and runtime["Convolution"] == 49

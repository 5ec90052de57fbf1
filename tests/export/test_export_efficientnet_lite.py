"""EfficientNet-Lite0 (TensorFlow "SAME" padding) through all three formats at fp32 and int8, verified."""

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def lite_bundle(tmp_path_factory):
    from _fixtures.export import export_run, make_digits_run

    root = tmp_path_factory.mktemp("lite")
    run = make_digits_run(root, per_class=20, steps=30, size=64, model="efficientnet_lite0")
    # a 30-step model: its int8 accuracy bound is loosened, as for tiny_bundle
    return export_run(run, root / "bundle", formats=("tflite", "onnx", "openvino"), precisions=("fp32", "int8"),
                      max_int8_drop=10.0, calib=32, max_eval=60)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "onnx", "openvino"])
@pytest.mark.parametrize("prec", ["fp32", "int8"])
def test_lite0_exports_and_verifies(lite_bundle, fmt, prec):
    a = lite_bundle.manifest.artifact(fmt, prec)
    assert a.status == "ok", a.error
    assert a.verification.passed and a.verification.n_images > 0
    if prec == "fp32":
        assert a.verification.agreement >= 0.99


@pytest.mark.slow
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

"""Verification figures and bounds, format/precision parsing and recipes (numpy only, no converters)."""

import numpy as np
import pytest

from edgerec.errors import ConfigError
from edgerec.export.formats import FORMATS, PRECISIONS, exporter, parse_list
from edgerec.export.verify import Thresholds, accuracy, judge, measure


def test_measure_counts_agreement_accuracy_and_logit_difference():
    ref = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    got = ref.copy()
    got[3] = [0.0, 1.5, 0.0]  # one flipped answer, 1.5 the largest difference
    labels = np.array([0, 1, 2, 1])
    v = measure(got, ref, labels, "single_label", reference_accuracy=accuracy(ref, labels, "single_label"))
    assert v.n_images == 4
    assert v.agreement == pytest.approx(0.75)
    assert v.accuracy == pytest.approx(1.0)  # the flip happens to be right; fractions, like metrics.json
    assert v.accuracy_delta == pytest.approx(0.25)
    assert v.max_abs_logit_diff == pytest.approx(1.5)


def test_multi_label_decisions_use_logit_zero():
    ref = np.array([[2.0, -1.0], [-3.0, 0.5]])
    labels = np.array([[1, 0], [0, 0]])
    assert accuracy(ref, labels, "multi_label") == pytest.approx(0.75)


def test_judge_bounds():
    th = Thresholds(min_agreement=0.99, max_int8_drop=1.5)
    base = measure(np.eye(3), np.eye(3), np.arange(3), "single_label", reference_accuracy=1.0)
    assert judge(base, "fp32", th) is None
    low = base.__class__(**{**base.__dict__, "agreement": 0.95})
    assert "agrees with PyTorch on only 95.0%" in judge(low, "fp16", th)
    assert judge(low, "int8", th) is None  # int8 is judged on accuracy, not agreement
    drop = base.__class__(**{**base.__dict__, "accuracy": 0.97, "accuracy_delta": -0.03})
    assert "3.00 points under" in judge(drop, "int8", th)
    assert judge(drop, "int8", Thresholds(max_int8_drop=3.5)) is None


def test_format_and_precision_lists():
    assert parse_list("onnx,tflite", tuple(FORMATS), what="format") == ("tflite", "onnx")  # table order
    assert parse_list(["INT8", "fp32", "int8"], PRECISIONS, what="precision") == ("fp32", "int8")
    with pytest.raises(ConfigError, match="did you mean 'openvino'"):
        parse_list("openvno", tuple(FORMATS), what="format")
    with pytest.raises(ConfigError, match="no precision"):
        parse_list("", PRECISIONS, what="precision")
    with pytest.raises(ConfigError, match="did you mean 'onnx'"):
        exporter("onx")
    assert exporter("onnx").__name__ == "export_onnx"


def test_recipes_in_the_repo_load(repo_root):
    from edgerec.export._orchestrate import load_recipe

    recipes = sorted((repo_root / "export").glob("*.yaml"))
    assert recipes, "export/*.yaml recipes are missing"
    for path in recipes:
        kw = load_recipe(path)
        parse_list(kw.get("formats", list(FORMATS)), tuple(FORMATS), what="format")
        parse_list(kw.get("precisions", ["fp32"]), PRECISIONS, what="precision")


def test_recipe_unknown_key_suggests(tmp_path):
    from edgerec.export._orchestrate import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text("formats: [onnx]\nmax_int8_dorp: 2\n")
    with pytest.raises(ConfigError, match="did you mean 'max_int8_drop'"):
        load_recipe(p)

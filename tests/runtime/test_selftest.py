"""The self-test (outputs on the check images against those recorded at export), on hand-built bundles: no torch."""

import numpy as np
import pytest
from _fixtures.runtime import add_check_images, record_check_outputs

from edgerec.runtime.selftest import output_tolerance, self_test, self_test_problem


def test_nothing_recorded_runs_and_is_said(rt_onnx_bundle):
    assert self_test(rt_onnx_bundle, threads=1) == []  # no check images: nothing to run
    rows = self_test(add_check_images(rt_onnx_bundle), threads=1)
    assert rows and all(r.passed and "recorded no outputs" in r.skipped for r in rows)


def test_recorded_outputs_pass_and_shifted_ones_fail(rt_onnx_bundle):
    record_check_outputs(add_check_images(rt_onnx_bundle))
    rows = self_test(rt_onnx_bundle, threads=1)
    assert rows and all(r.passed and r.skipped is None and r.max_abs_diff <= r.tolerance for r in rows), rows
    assert self_test_problem(rt_onnx_bundle, threads=1) is None

    record_check_outputs(rt_onnx_bundle, shift=2.0)  # every recorded output two tolerances away
    rows = self_test(rt_onnx_bundle, threads=1)
    assert rows and not any(r.passed for r in rows)
    assert all("differ from export's" in r.reason and "check/" in r.reason for r in rows)
    problem = self_test_problem(rt_onnx_bundle, threads=1)
    assert problem.startswith("self-test failed: ") and all(r.key in problem for r in rows)

    from edgerec.devices.board import bundle_problem

    assert bundle_problem(rt_onnx_bundle) == problem  # the board's one check before a switch


def test_int8_tolerance_is_in_quantization_steps():
    from edgerec.bundle import Artifact, QuantParams
    from edgerec.runtime.selftest import INT8_STEPS

    out = np.array([[-2.0, 0.0, 3.1]])
    q = Artifact(format="tflite", precision="int8", output_dtype="int8", output_quant=QuantParams(0.05, 3))
    assert output_tolerance(q, out)["abs"] == pytest.approx(INT8_STEPS * 0.05)
    f = Artifact(format="onnx", precision="int8")  # float output of an int8 graph: the range's step
    assert output_tolerance(f, out)["abs"] == pytest.approx(INT8_STEPS * 5.1 / 255, rel=1e-6)
    assert output_tolerance(Artifact(format="onnx", precision="fp32"), out)["abs"] == pytest.approx(1e-3 * 3.1)


def test_a_bundle_newer_than_the_board_says_how_to_upgrade(rt_onnx_bundle):
    import json

    from edgerec.devices.board import bundle_problem

    data = json.loads((rt_onnx_bundle / "edgerec.json").read_text())
    data["schema_version"] = "3.0"  # written by a newer edgerec than the board's
    (rt_onnx_bundle / "edgerec.json").write_text(json.dumps(data))
    problem = bundle_problem(rt_onnx_bundle)
    assert "unknown schema_version '3.0'" in problem and "edgerec device setup TARGET --upgrade" in problem

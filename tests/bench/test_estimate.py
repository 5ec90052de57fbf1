import pytest

from edgerec.bench.estimate import (
    MacCount,
    attach_measurements,
    count_macs,
    estimate_bundle,
    estimate_latency,
)
from edgerec.devices.device_profile import load_profile
from edgerec.errors import ConfigError, ModelError

# builder.tiny_net on 32x32: conv 3->8 k3 s2 (16x16 out), depthwise 8 k3, pointwise 8->16, linear 16->3
TINY_MACS = 16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 * 9 + 16 * 16 * 16 * 8 + 16 * 3


@pytest.mark.parametrize("file", ["model_fp32.onnx", "model_fp32.tflite", "model_fp16.xml"])
def test_mac_count_from_each_format_matches_the_hand_count(bench_bundle, file):
    assert count_macs(bench_bundle / file).total == TINY_MACS


def test_tflite_count_splits_depthwise(bench_bundle):
    by = count_macs(bench_bundle / "model_fp32.tflite").by_op
    assert by["DEPTHWISE_CONV_2D"] == 16 * 16 * 8 * 9 and by["FULLY_CONNECTED"] == 48


def test_estimate_is_labelled_with_its_source():
    rpi4 = load_profile("rpi4")
    est = estimate_latency(MacCount(569_000_000), rpi4, precision="fp32", backend="litert", artifact="tflite-fp32")
    assert est.label == "ESTIMATE"
    assert est.match == "references for fp32 on litert"
    assert est.sources == sorted({r.source for r in rpi4.reference}) and est.sources
    # MobileNet v1's own MAC count reproduces a figure within the reference range
    assert est.low_ms <= 87.0 <= est.high_ms + 1e-9
    assert est.low_ms <= est.latency_ms <= est.high_ms


def test_estimate_says_when_the_reference_does_not_match():
    est = estimate_latency(MacCount(10**8), "rpi4", precision="int8", backend="onnxruntime")
    assert "neither backend nor precision" in est.match


def test_profile_without_figures_refuses_to_invent_one(bench_bundle):
    with pytest.raises(ConfigError, match="no published reference figures"):
        estimate_bundle(bench_bundle, "rpi5")


def test_estimate_bundle_and_error_against_a_measurement(bench_bundle, fake_record):
    ests = estimate_bundle(bench_bundle, "rpi4")
    assert {e.artifact for e in ests} == {"onnx-fp32", "tflite-fp32", "openvino-fp16"}
    tfl = next(e for e in ests if e.artifact == "tflite-fp32")
    assert tfl.backend == "litert" and tfl.gmacs == pytest.approx(TINY_MACS / 1e9)
    measured = fake_record("tflite-fp32", "litert", 4, p50=2 * tfl.latency_ms, device={"profile": "rpi4"})
    other = fake_record("tflite-fp32", "litert", 4, p50=1.0, device={"profile": "rpi5"})
    tfl2 = next(e for e in attach_measurements(ests, [measured, other]) if e.artifact == "tflite-fp32")
    assert tfl2.measured_ms == pytest.approx(measured["latency_ms"]["p50"])
    assert tfl2.error_pct == pytest.approx(100 * (tfl.latency_ms - tfl2.measured_ms) / tfl2.measured_ms)


def test_unknown_model_file(tmp_path):
    with pytest.raises(ModelError, match="not .onnx, .tflite or .xml"):
        count_macs(tmp_path / "model.pt")


def test_dynamic_input_size_needs_a_shape(tmp_path):
    import openvino as ov
    import torch
    from builder import tiny_net

    onnx_path = tmp_path / "dyn.onnx"
    torch.onnx.export(tiny_net(), (torch.randn(1, 3, 32, 32),), str(onnx_path), input_names=["x"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}}, dynamo=False, opset_version=17)
    xml = tmp_path / "dyn.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml))
    for p in (onnx_path, xml):
        with pytest.raises(ModelError, match="dynamic input shape"):
            count_macs(p)
        assert count_macs(p, (1, 3, 32, 32)).total == TINY_MACS

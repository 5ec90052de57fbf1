"""edgerec.bundle: manifest schema, load, verify."""

import json

import pytest

from edgerec.bundle import (
    Artifact, InputSpec, Manifest, QuantParams, Verification, is_outdated, load_manifest, sha256_file, verify_bundle, write_manifest,
)
from edgerec.errors import BundleError


def _bundle(tmp_path, payload=b"model-bytes"):
    (tmp_path / "model_int8.tflite").write_bytes(payload)
    art = Artifact(
        format="tflite", precision="int8", file="model_int8.tflite", files=("model_int8.tflite",),
        sha256={"model_int8.tflite": sha256_file(tmp_path / "model_int8.tflite")}, size_bytes=len(payload),
        layout="NHWC", input_dtype="int8", output_dtype="int8",
        input_quant=QuantParams(1.0, -128), output_quant=QuantParams(0.1, 3), normalization_in_model=True,
        verification=Verification(n_images=10, accuracy=0.9, agreement=1.0, max_abs_logit_diff=0.2),
    )
    failed = Artifact(format="onnx", precision="fp16", status="failed", error="converter said no")
    m = Manifest(name="digits", version="1", task="single_label", labels=tuple("0123456789"),
                 input=InputSpec(32, 32), artifacts=(art, failed),
                 provenance={"edgerec_version": "0.1.0", "created": "2026-11-22T00:00:00Z"})
    write_manifest(m, tmp_path)
    return m


def test_write_load_round_trip(tmp_path):
    m = _bundle(tmp_path)
    loaded = load_manifest(tmp_path)
    assert loaded == m
    assert [a.key for a in loaded.ok_artifacts()] == ["tflite-int8"]
    assert loaded.artifact(precision="int8").input_quant == QuantParams(1.0, -128)


def test_artifact_lookup_names_what_exists(tmp_path):
    m = _bundle(tmp_path)
    with pytest.raises(BundleError, match="available: tflite-int8"):
        m.artifact(format="openvino")


def test_verify_detects_a_changed_file(tmp_path):
    _bundle(tmp_path)
    assert verify_bundle(tmp_path).name == "digits"
    (tmp_path / "model_int8.tflite").write_bytes(b"model-bytez")
    with pytest.raises(BundleError, match="sha256 mismatch for 'model_int8.tflite'"):
        verify_bundle(tmp_path)


def test_verify_detects_a_missing_file(tmp_path):
    _bundle(tmp_path)
    (tmp_path / "model_int8.tflite").unlink()
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(tmp_path)


def test_unknown_schema_version_is_refused(tmp_path):
    _bundle(tmp_path)
    data = json.loads((tmp_path / "edgerec.json").read_text())
    data["schema_version"] = "3.0"
    (tmp_path / "edgerec.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="unknown schema_version '3.0'"):
        load_manifest(tmp_path)


def test_schema_1_bundle_is_read_with_percent_converted_to_fractions(tmp_path):
    """1.x manifests stored accuracy in percent; 2.x in fractions like metrics.json. Old bundles still load."""
    _bundle(tmp_path)
    data = json.loads((tmp_path / "edgerec.json").read_text())
    assert data["schema_version"] == "2.0"
    data["schema_version"] = "1.0"
    data["artifacts"][0]["verification"].update(accuracy=97.5, accuracy_delta=-0.5)
    data["reference"] = {"accuracy": 98.0, "n_images": 10}
    (tmp_path / "edgerec.json").write_text(json.dumps(data))
    m = load_manifest(tmp_path)
    v = m.artifact(precision="int8").verification
    assert v.accuracy == pytest.approx(0.975) and v.accuracy_delta == pytest.approx(-0.005)
    assert m.reference["accuracy"] == pytest.approx(0.98)
    assert is_outdated(m) and m.schema_version == "1.0"
    assert json.loads((tmp_path / "edgerec.json").read_text())["reference"]["accuracy"] == 98.0  # file untouched


def test_schema_violation_names_the_field(tmp_path):
    _bundle(tmp_path)
    data = json.loads((tmp_path / "edgerec.json").read_text())
    data["artifacts"][0]["precision"] = "int4"
    (tmp_path / "edgerec.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="artifacts/0/precision"):
        load_manifest(tmp_path)


def test_file_path_escaping_the_bundle_is_refused(tmp_path):
    (tmp_path / "b").mkdir()
    _bundle(tmp_path / "b")
    data = json.loads((tmp_path / "b" / "edgerec.json").read_text())
    (tmp_path / "outside.bin").write_bytes(b"x")
    data["artifacts"][0]["sha256"] = {"../outside.bin": sha256_file(tmp_path / "outside.bin")}
    (tmp_path / "b" / "edgerec.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="outside the bundle"):
        verify_bundle(tmp_path / "b")


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no edgerec.json"):
        load_manifest(tmp_path)
    (tmp_path / "edgerec.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_manifest(tmp_path)

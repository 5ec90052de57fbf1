"""End to end on ``tiny_bundle``: every artifact verified, self-describing files, archive and CLI."""

import json
import shutil

import numpy as np
import pytest

from edgerec.bundle import load_manifest, verify_bundle
from edgerec.errors import BundleError


def _ok(bundle, fmt, prec):
    return bundle.manifest.artifact(fmt, prec)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("prec", ["fp32", "int8"])
def test_artifacts_are_verified_through_their_runtime(tiny_bundle, fmt, prec):
    a = _ok(tiny_bundle, fmt, prec)
    v = a.verification
    ref = tiny_bundle.manifest.reference
    assert v.passed and v.n_images == ref["n_images"] > 0
    assert v.accuracy_delta == pytest.approx(v.accuracy - ref["accuracy"], abs=1e-3)
    if prec == "fp32":
        assert v.agreement >= 0.99 and v.max_abs_logit_diff < 1e-3
    assert a.sha256 and all((tiny_bundle.dir / f).is_file() for f in a.files)
    assert a.size_bytes == sum((tiny_bundle.dir / f).stat().st_size for f in a.files)
    # the run's fp32 temperature (fitted on val); this bundle's int8 graph was made by PTQ at export, so it
    # has no temperature of its own and takes the fp32 one; ECE measured on the held-out images both ways
    cal = json.loads((tiny_bundle.dir.parent / "run" / "metrics.json").read_text())["calibration"]["fp32"]
    assert a.temperature == pytest.approx(cal["temperature"], rel=1e-5)
    assert 0.0 <= v.ece <= 1.0 and 0.0 <= v.ece_calibrated <= 1.0


def test_int8_is_small_and_manifest_is_complete(tiny_bundle):
    m = tiny_bundle.manifest
    fp32 = _ok(tiny_bundle, "onnx", "fp32").size_bytes
    assert _ok(tiny_bundle, "onnx", "int8").size_bytes <= 0.35 * fp32
    ov32, ov8 = _ok(tiny_bundle, "openvino", "fp32"), _ok(tiny_bundle, "openvino", "int8")
    bin_size = lambda a: (tiny_bundle.dir / a.files[1]).stat().st_size  # noqa: E731
    assert bin_size(ov8) <= 0.35 * bin_size(ov32)
    assert _ok(tiny_bundle, "onnx", "int8").quantization == "ptq"
    p = m.provenance
    assert p["run_id"] and len(p["dataset_sha256"]) == 64 and len(p["calibration_sha256"]) == 64
    assert "torch" in p["versions"] and "onnxruntime" in p["versions"]
    assert len(m.check_images) == 10 and all((tiny_bundle.dir / c).is_file() for c in m.check_images)
    assert load_manifest(tiny_bundle.dir) == m  # what is on disk is what export returned
    # a format whose converter is missing or failed is listed with its reason, not dropped
    for a in m.artifacts:
        assert a.status == "ok" or a.error


def test_onnx_file_describes_itself(tiny_bundle):
    import onnx
    import onnxruntime as ort

    a = _ok(tiny_bundle, "onnx", "int8")
    model = onnx.load(str(tiny_bundle.dir / a.file))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["labels"]) == list(tiny_bundle.manifest.labels)
    assert json.loads(props["input"])["height"] == tiny_bundle.manifest.input.height
    ops = {n.op_type for n in model.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # activations are uint8 QDQ (fast path of ONNX Runtime on x86)
    zps = {i.name: i.data_type for i in model.graph.initializer}
    q_zp = [zps[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q_zp and all(t == onnx.TensorProto.UINT8 for t in q_zp)
    sess = ort.InferenceSession(str(tiny_bundle.dir / a.file), providers=["CPUExecutionProvider"])
    h = tiny_bundle.manifest.input.height
    for n in (1, 3):  # dynamic batch
        assert sess.run(None, {"input": np.zeros((n, 3, h, h), np.float32)})[0].shape == (n, len(tiny_bundle.manifest.labels))


def test_openvino_rt_info_has_labels(tiny_bundle):
    import openvino as ov

    a = _ok(tiny_bundle, "openvino", "fp32")
    model = ov.Core().read_model(str(tiny_bundle.dir / a.file))
    labels = json.loads(model.get_rt_info(["edgerec", "labels"]).astype(str))
    assert labels == list(tiny_bundle.manifest.labels)
    assert model.get_rt_info(["model_info", "model_type"]).astype(str) == "Classification"


@pytest.mark.parametrize("prec", ["fp32", "int8"])
def test_openvino_ir_is_open_in_its_batch_only(tiny_bundle, prec):
    """The image size is fixed as in ONNX and TFLite: open spatial dimensions cost OpenVINO shape work per call."""
    import openvino as ov

    a = _ok(tiny_bundle, "openvino", prec)
    shape = ov.Core().read_model(str(tiny_bundle.dir / a.file)).input(0).get_partial_shape()
    h, w = tiny_bundle.manifest.input.height, tiny_bundle.manifest.input.width
    assert shape[0].is_dynamic
    assert [d.get_length() for d in list(shape)[1:]] == [3, h, w]


def test_archive_unpacks_to_a_verified_copy(tiny_bundle, tmp_path):
    from edgerec._archive import unpack

    assert tiny_bundle.archive.name == tiny_bundle.dir.name + ".edgerec"
    dest = unpack(tiny_bundle.archive, tmp_path / "copy")
    assert verify_bundle(dest) == tiny_bundle.manifest


def test_tampered_file_and_unknown_schema_are_refused(tiny_bundle, tmp_path):
    copy = shutil.copytree(tiny_bundle.dir, tmp_path / "b")
    a = _ok(tiny_bundle, "onnx", "fp32")
    with open(copy / a.file, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="sha256 mismatch for 'onnx/model_fp32.onnx'"):
        verify_bundle(copy)
    data = json.loads((copy / "edgerec.json").read_text())
    data["schema_version"] = "7.0"
    (copy / "edgerec.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="unknown schema_version '7.0'"):
        load_manifest(copy)


def test_cli_bundle_info_verify_pack_unpack(tiny_bundle, tmp_path, capsys):
    from edgerec.cli import main

    assert main(["bundle", "info", str(tiny_bundle.archive)]) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "int8" in out and f"{len(tiny_bundle.manifest.labels)} labels" in out
    assert main(["bundle", "verify", str(tiny_bundle.dir), "--run"]) == 0
    out = capsys.readouterr().out
    assert "same answer as at export 100%" in out and "file hashes ok" in out
    arch = tmp_path / "x.tar.gz"
    assert main(["bundle", "pack", str(tiny_bundle.dir), "--out", str(arch)]) == 0
    assert main(["bundle", "unpack", str(arch), str(tmp_path / "u")]) == 0
    assert (tmp_path / "u" / "edgerec.json").is_file()
    assert main(["bundle", "unpack", str(arch), str(tmp_path / "u")]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err


def test_cli_verify_run_catches_changed_answers(tiny_bundle, tmp_path, capsys):
    from edgerec.cli import main

    copy = shutil.copytree(tiny_bundle.dir, tmp_path / "b")
    data = json.loads((copy / "edgerec.json").read_text())
    key = "onnx-fp32"
    data["reference"]["artifact_check_top1"][key] = [(x + 1) % 10 for x in data["reference"]["artifact_check_top1"][key]]
    from edgerec.bundle import contract_digest

    data["contract_sha256"], data["contract_sections"] = contract_digest(data)  # consistent: only the answers differ
    (copy / "edgerec.json").write_text(json.dumps(data))
    assert main(["bundle", "verify", str(copy), "--run"]) == 1
    assert "answers changed since export for: onnx-fp32" in capsys.readouterr().err


def test_export_of_a_run_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    from edgerec.cli import main

    (tmp_path / "run").mkdir()
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "ModelError" in err and "no checkpoint (best.pt)" in err
    assert not (tmp_path / "b").exists()


def test_self_test_refuses_a_swapped_model_whose_hashes_were_recomputed(tiny_bundle, tmp_path, capsys):
    """Another valid model in the artifact's place, its sha256 and the contract hash recomputed: every hash
    check passes, and the self-test (outputs against those recorded at export) is what refuses it."""
    import onnx
    from onnx import numpy_helper

    from edgerec.bundle import contract_digest, sha256_file, verify_bundle
    from edgerec.cli import main
    from edgerec.runtime import Classifier
    from edgerec.runtime.selftest import self_test

    copy = shutil.copytree(tiny_bundle.dir, tmp_path / "b")
    data = json.loads((copy / "edgerec.json").read_text())
    art = next(a for a in data["artifacts"] if a["format"] == "onnx" and a["precision"] == "fp32")
    model = onnx.load(str(copy / art["file"]))
    n = len(data["labels"])
    head = next(t for t in model.graph.initializer if len(t.dims) == 2 and n in t.dims)  # the classifier's weight
    w = numpy_helper.to_array(head)
    head.CopyFrom(numpy_helper.from_array((w[::-1] * 1.5).astype(w.dtype) if w.shape[0] == n else w[:, ::-1] * 1.5,
                                         head.name))  # classes swapped and rescaled: a valid, different model
    onnx.save(model, str(copy / art["file"]))
    art["sha256"] = {rel: sha256_file(copy / rel) for rel in art["sha256"]}
    art["size_bytes"] = (copy / art["file"]).stat().st_size
    data["contract_sha256"], data["contract_sections"] = contract_digest(data)
    (copy / "edgerec.json").write_text(json.dumps(data))

    verify_bundle(copy)  # the hash check cannot see it
    rows = {r.key: r for r in self_test(copy, threads=1)}
    bad = rows["onnx-fp32"]
    assert not bad.passed and bad.max_abs_diff > bad.tolerance and "differ from export's" in bad.reason
    assert all(r.passed for k, r in rows.items() if k != "onnx-fp32")  # the others untouched
    assert main(["bundle", "verify", str(copy), "--run"]) == 1
    assert "answers changed since export for: onnx-fp32" in capsys.readouterr().err
    with pytest.raises(BundleError, match="self-test failed: onnx-fp32"):
        Classifier.load(copy, format="onnx", precision="fp32", self_test=True)
    with Classifier.load(tiny_bundle.dir, format="onnx", precision="fp32", self_test=True) as clf:
        assert clf.artifact.key == "onnx-fp32"  # an untouched bundle passes its own self-test


def test_recorded_outputs_and_tolerances(tiny_bundle):
    m = tiny_bundle.manifest
    ref = m.reference
    for a in m.ok_artifacts():
        out = ref["artifact_check_outputs"][a.key]
        assert len(out) == len(m.check_images) and len(out[0]) == len(m.labels)
        tol = ref["artifact_check_tolerance"][a.key]
        assert tol["abs"] > 0 and ("quantization steps" in tol["basis"]) == (a.precision == "int8")


def test_every_artifact_matches_its_record_in_the_format_table(tiny_bundle):
    """``edgerec.formats`` is what export, runtime, bench and doctor read: the files written must match it."""
    from edgerec.formats import FORMATS
    from edgerec.runtime.backends import open_backend

    seen = set()
    for a in tiny_bundle.manifest.artifacts:
        if a.status != "ok":
            continue
        rec = FORMATS[a.format]
        assert a.file.endswith(rec.suffix), (a.key, a.file)
        with open_backend(tiny_bundle.dir / a.file, a, backend=rec.backends[0], threads=1) as be:
            assert be.dynamic_batch is rec.dynamic_batch, a.key
        seen.add(a.format)
    assert seen == set(FORMATS)

"""Classifier.load on real (tiny) bundles: every artifact, artifact choice, refusing bad bundles."""

import json

import numpy as np
import pytest
from _fixtures.runtime import COLOUR_LABELS, colour_frame

from edgerec.bundle import load_manifest
from edgerec.errors import BackendError, BundleError, ConfigError
from edgerec.runtime import Classifier, choose_artifact
from edgerec.runtime.adapters import to_model_input


@pytest.mark.parametrize("format,precision", [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32")])
def test_every_onnx_bundle_artifact_answers_right(rt_onnx_bundle, format, precision):
    with Classifier.load(rt_onnx_bundle, format=format, precision=precision, threads=1) as clf:
        assert clf.artifact.key == f"{format}-{precision}"
        for name in COLOUR_LABELS:
            pred = clf.classify(colour_frame(name))
            assert pred.label == name and pred.score > 0.9
            assert len(pred.top_k) == 3 and pred.top_k[0][0] == name


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_tflite_artifacts_answer_right(rt_tflite_bundle, precision):
    with Classifier.load(rt_tflite_bundle, precision=precision, threads=1) as clf:
        assert clf.backend.name == "litert"
        assert clf.artifact.input_dtype == ("int8" if precision == "int8" else "float32")
        preds = clf.classify_batch([colour_frame(n) for n in COLOUR_LABELS])
        assert [p.label for p in preds] == list(COLOUR_LABELS)


def test_int8_scores_match_fp32(rt_tflite_bundle):
    frame = colour_frame("green")
    with Classifier.load(rt_tflite_bundle, precision="fp32") as f, Classifier.load(rt_tflite_bundle, precision="int8") as q:
        np.testing.assert_allclose(f.classify(frame).scores, q.classify(frame).scores, atol=0.05)


def test_quantized_tensor_is_what_the_model_gets(rt_onnx_bundle):
    with Classifier.load(rt_onnx_bundle, precision="int8") as clf:
        frame = colour_frame("blue", 32, 32)  # already model size: resize is the identity
        x = clf.prepare(frame)
        ref = to_model_input(frame[..., ::-1], clf.manifest.input, clf.artifact)
        np.testing.assert_array_equal(x, ref)
        raw = clf.invoke(x)
        assert raw.dtype == np.uint8  # dequantized by postprocess
        assert clf.postprocess(raw).label == "blue"


def test_auto_choice_prefers_int8_and_respects_overrides(rt_onnx_bundle):
    m = load_manifest(rt_onnx_bundle)
    art, be = choose_artifact(m, installed=["onnxruntime", "openvino"])
    assert (art.key, be) == ("onnx-int8", "onnxruntime")
    art, be = choose_artifact(m, installed=["openvino"])
    assert (art.format, be) == ("onnx", "openvino")  # OpenVINO reads ONNX too
    art, be = choose_artifact(m, format="openvino", installed=["onnxruntime", "openvino"])
    assert (art.key, be) == ("openvino-fp32", "openvino")
    with pytest.raises(BackendError, match="installed backends: litert") as e:
        choose_artifact(m, installed=["litert"])
    assert "onnx-fp32" in str(e.value)
    with pytest.raises(ConfigError, match="did you mean 'onnxruntime'"):
        choose_artifact(m, backend="onnxrt")
    with pytest.raises(ConfigError, match="precision"):
        choose_artifact(m, precision="int4")


def test_batch_with_dynamic_and_static_batch_models(rt_onnx_bundle):
    frames = [colour_frame(n) for n in ("red", "blue", "green", "red", "green")]
    with Classifier.load(rt_onnx_bundle, precision="fp32") as dyn, Classifier.load(rt_onnx_bundle, precision="int8") as fixed:
        assert dyn.backend.dynamic_batch and not fixed.backend.dynamic_batch
        want = ["red", "blue", "green", "red", "green"]
        assert [p.label for p in dyn.classify_batch(frames)] == want
        assert [p.label for p in fixed.classify_batch(frames)] == want
        assert dyn.classify_batch([]) == []


def test_bad_hash_is_refused(rt_onnx_bundle):
    (rt_onnx_bundle / "model_int8.onnx").write_bytes(b"\0" * 10)
    with pytest.raises(BundleError, match="sha256 mismatch"):
        Classifier.load(rt_onnx_bundle)


def test_bad_schema_is_refused(rt_onnx_bundle):
    path = rt_onnx_bundle / "edgerec.json"
    data = json.loads(path.read_text())
    del data["labels"]
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="labels"):
        Classifier.load(rt_onnx_bundle)


def test_manifest_that_lies_about_the_input_is_refused(rt_onnx_bundle):
    path = rt_onnx_bundle / "edgerec.json"
    data = json.loads(path.read_text())
    data["input"]["height"] = data["input"]["width"] = 64
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="does not match its model file"):
        Classifier.load(rt_onnx_bundle, precision="fp32", verify=False)


def test_smoothing_and_threshold_through_load(rt_onnx_bundle):
    with Classifier.load(rt_onnx_bundle, precision="fp32", smoothing=4) as clf:
        labels = [clf.classify(colour_frame(n)).label for n in ("red", "red", "red", "blue")]
        assert labels == ["red"] * 4  # one blue frame does not flip a smoothed answer
    grey = np.full((32, 32, 3), 128, np.uint8)
    with Classifier.load(rt_onnx_bundle, precision="fp32", threshold=0.9) as clf:
        assert clf.classify(grey).label == "unknown"


def test_multilabel_bundle(rt_multilabel_bundle):
    with Classifier.load(rt_multilabel_bundle, threshold=0.5) as clf:
        # magenta: red and blue high, green low
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[:] = (230, 10, 230)
        pred = clf.classify(frame)
        assert sorted(pred.labels) == ["blue", "red"]


def test_device_profile_defaults_are_preferences(rt_onnx_bundle):
    # x86-64: OpenVINO, int8, host threads -> the int8 ONNX artifact, run by OpenVINO
    with Classifier.load(rt_onnx_bundle, profile="x86-64") as clf:
        assert (clf.artifact.key, clf.backend.name) == ("onnx-int8", "openvino")
        assert clf.classify(colour_frame("red")).label == "red"
    # rpi5: LiteRT int8, 4 threads; this bundle has no TFLite, so the best runnable artifact is used
    with Classifier.load(rt_onnx_bundle, profile="rpi5") as clf:
        assert clf.backend.name == "onnxruntime" and clf.backend.threads == 4
    with Classifier.load(rt_onnx_bundle, profile="rpi5", threads=1, precision="fp32") as clf:
        assert clf.backend.threads == 1 and clf.artifact.precision == "fp32"  # the call wins


def test_embedded_preprocessing_artifact_takes_whole_frames(rt_onnx_bundle):
    m = load_manifest(rt_onnx_bundle)
    pp = next(a for a in m.ok_artifacts() if a.embedded_preprocess)
    assert choose_artifact(m, format="openvino", installed=["openvino"])[0].key == "openvino-fp32"  # plain one first
    with Classifier.load(rt_onnx_bundle, format="openvino", backend="openvino") as plain:
        with Classifier(m, pp, plain.backend.__class__(rt_onnx_bundle / pp.file, pp, threads=1), root=rt_onnx_bundle) as clf:
            for name, (h, w) in zip(COLOUR_LABELS, [(48, 64), (120, 90), (32, 32)]):
                frame = colour_frame(name, h, w)
                x = clf.prepare(frame)
                assert x.shape == (1, h, w, 3) and x.dtype == np.uint8  # the whole frame, not resized here
                pred = clf.classify(frame)
                assert pred.label == name
                np.testing.assert_allclose(pred.scores, plain.classify(frame).scores, atol=0.02)


def test_packed_bundle_loads_and_cleans_up(rt_onnx_bundle, tmp_path):
    from edgerec._archive import pack

    archive = pack(rt_onnx_bundle, tmp_path / "colours.edgerec")
    clf = Classifier.load(archive, precision="fp32")
    unpacked = clf.root
    assert unpacked.is_dir() and unpacked != rt_onnx_bundle
    assert clf.classify(colour_frame("green")).label == "green"
    clf.close()
    assert not unpacked.exists()


def test_tensorrt_options_cache_engines_and_keep_precision(tmp_path, monkeypatch):
    from pathlib import Path

    from edgerec.bundle import Artifact
    from edgerec.runtime.backends.ort_backend import provider_options

    monkeypatch.setenv("EDGEREC_CACHE", str(tmp_path))
    fp32 = Artifact(format="onnx", precision="fp32", file="m.onnx", sha256={"m.onnx": "ab" * 32})
    opts = provider_options("TensorrtExecutionProvider", Path("m.onnx"), fp32)
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_fp16_enable"] == "False"
    assert opts["trt_engine_cache_path"] == str(tmp_path / "tensorrt" / ("ab" * 8))
    fp16 = Artifact(format="onnx", precision="fp16", file="m.onnx")
    assert provider_options("TensorrtExecutionProvider", Path("m.onnx"), fp16)["trt_fp16_enable"] == "True"
    assert provider_options("CPUExecutionProvider", Path("m.onnx"), fp32) == {}

"""``--format/--precision auto``: which artifact ``Classifier.load`` runs, by each level of the precedence."""

import dataclasses
import json
import sys

import pytest
from _fixtures.runtime import colour_frame

from edgerec.bench.deploy_profile import DeployProfile, write_deploy_profile
from edgerec.bundle import Verification, load_manifest, write_manifest
from edgerec.runtime import Classifier
from edgerec.runtime import choice as choice_mod
from edgerec.runtime.choice import choice_cache_path, verified_accuracy


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own, outside the bundle."""
    monkeypatch.setenv("EDGEREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_timing(monkeypatch):
    """Timing at load that reports the given milliseconds per candidate label (real loading and calls, one
    round, so what fails to load still fails); returns the list of candidate sets it was asked to time."""
    real = choice_mod._time_candidates
    asked, ms = [], {}

    def fake(manifest, cands, opener, **_):
        timings, failed = real(manifest, cands, opener, rounds=1, calls=1, budget_s=0.0)
        asked.append(sorted(timings))
        return {k: ms.get(k, 50.0) for k in timings}, failed

    monkeypatch.setattr(choice_mod, "_time_candidates", fake)
    return asked, ms


def _with_accuracy(root, accuracies: dict[str, float]):
    m = load_manifest(root)
    arts = tuple(dataclasses.replace(a, verification=Verification(n_images=100, accuracy=accuracies[a.key], agreement=1.0,
                                                                  max_abs_logit_diff=0.0))
                 if a.key in accuracies else a for a in m.artifacts)
    write_manifest(dataclasses.replace(m, artifacts=arts), root)


def test_format_and_precision_pin_the_artifact(rt_onnx_bundle, cache, fake_timing):
    asked, _ = fake_timing
    with Classifier.load(rt_onnx_bundle, format="onnx", precision="int8", threads=1) as clf:
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-int8", "onnxruntime", "flags")
        assert "format onnx" in clf.choice.reason and "precision int8" in clf.choice.reason
    assert asked == [] and not cache.exists()


def test_timing_picks_the_fastest_and_one_flag_narrows(rt_onnx_bundle, cache, fake_timing):
    asked, ms = fake_timing
    ms.update({"openvino-fp32/openvino": 0.1, "onnx-int8/onnxruntime": 0.2})
    with Classifier.load(rt_onnx_bundle, threads=1) as clf:
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("openvino-fp32", "openvino", "timed")
        assert clf.choice.reason.startswith("fastest of 6 timed at load: 0.1 ms per frame (next: onnx-int8/onnxruntime 0.2 ms)")
        assert clf.choice.timings_ms["openvino-fp32/openvino"] == 0.1
        assert clf.classify(colour_frame("blue")).label == "blue"  # the timed instance is the one returned
    with Classifier.load(rt_onnx_bundle, precision="int8", threads=1) as clf:  # only int8 candidates
        assert (clf.artifact.key, clf.backend.name) == ("onnx-int8", "onnxruntime")
        assert "among precision int8" in clf.choice.reason
    assert asked[-1] == ["onnx-int8/onnxruntime", "onnx-int8/openvino"]


def test_accuracy_floor_leaves_out_a_fast_but_inaccurate_artifact(rt_onnx_bundle, cache, fake_timing):
    _, ms = fake_timing
    # int8 is fastest but 2 points worse; one artifact without a recorded accuracy is left out too
    _with_accuracy(rt_onnx_bundle, {"onnx-fp32": 0.99, "onnx-int8": 0.97, "openvino-fp32": 0.985})
    ms.update({"onnx-int8/onnxruntime": 0.05, "onnx-int8/openvino": 0.06, "openvino-fp32/openvino": 0.3,
               "onnx-fp32/onnxruntime": 0.2})
    with Classifier.load(rt_onnx_bundle, threads=1) as clf:
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-fp32", "onnxruntime", "timed")
        assert "accuracy within 0.01 of the best (0.990); below that: onnx-int8 (0.970)" in clf.choice.reason
        assert "no recorded accuracy: openvino-fp32-pp" in clf.choice.reason
        assert set(clf.choice.excluded) == {"onnx-int8/onnxruntime", "onnx-int8/openvino", "openvino-fp32-pp/openvino"}
        assert set(clf.choice.timings_ms) == {"onnx-fp32/onnxruntime", "onnx-fp32/openvino", "openvino-fp32/openvino"}
    # a wider tolerance lets the fast one in
    with Classifier.load(rt_onnx_bundle, threads=1, accuracy_tolerance=0.05) as clf:
        assert clf.artifact.key == "onnx-int8"


def test_one_verification_image_is_no_difference():
    from edgerec.bundle import Artifact
    from edgerec.runtime.choice import Candidate, _accurate

    def cand(precision, acc, n):
        return Candidate(Artifact(format="tflite", precision=precision, verification=Verification(n, acc, 1.0, 0.0)),
                         "litert")

    # 40 images: 0.650 is one image below 0.675, 0.625 two
    keep, out, note = _accurate([cand("int8", 0.675, 40), cand("fp32", 0.65, 40), cand("fp16", 0.625, 40)], 0.01)
    assert [c.artifact.precision for c in keep] == ["int8", "fp32"] and list(out) == ["tflite-fp16/litert"]
    assert note.startswith("accuracy within 0.025 of the best (0.675; one image of 40)")
    keep, _, _ = _accurate([cand("int8", 0.99, 1000), cand("fp32", 0.975, 1000)], 0.01)  # 1000: one point holds
    assert [c.artifact.precision for c in keep] == ["int8"]


def test_percent_or_fraction_accuracy_reads_as_a_fraction():
    from edgerec.bundle import Artifact

    def art(acc):
        return Artifact(format="onnx", precision="fp32", verification=Verification(10, acc, 1.0, 0.0))

    assert verified_accuracy(art(0.985)) == pytest.approx(0.985)
    assert verified_accuracy(art(98.5)) == pytest.approx(0.985)  # schema 1.x wrote percent
    assert verified_accuracy(Artifact(format="onnx", precision="fp32")) is None


def test_timed_choice_is_cached_outside_the_bundle_and_reused(rt_onnx_bundle, cache, fake_timing):
    asked, ms = fake_timing
    ms["onnx-fp32/openvino"] = 0.01
    before = sorted(p.name for p in rt_onnx_bundle.rglob("*"))
    with Classifier.load(rt_onnx_bundle, threads=1) as clf:
        assert (clf.choice.source, clf.artifact.key, clf.backend.name) == ("timed", "onnx-fp32", "openvino")
    path = choice_cache_path(rt_onnx_bundle)
    assert path.is_file() and cache in path.parents and rt_onnx_bundle not in path.parents
    assert sorted(p.name for p in rt_onnx_bundle.rglob("*")) == before  # nothing written into the bundle
    data = json.loads(path.read_text())
    (entry,) = data["entries"].values()
    assert (entry["artifact"], entry["backend"]) == ("onnx-fp32", "openvino")
    ms["onnx-fp32/openvino"] = 99.0  # would lose if timed again
    with Classifier.load(rt_onnx_bundle, threads=1) as clf:
        assert (clf.choice.source, clf.artifact.key, clf.backend.name) == ("cached", "onnx-fp32", "openvino")
        assert str(path) in clf.choice.reason and clf.classify(colour_frame("red")).label == "red"
    assert len(asked) == 1
    with Classifier.load(rt_onnx_bundle, threads=2) as clf:  # another thread count: its own entry
        assert clf.choice.source == "timed"
    with Classifier.load(rt_onnx_bundle, threads=1, choice_cache=False) as clf:  # --retime
        assert clf.choice.source == "timed" and clf.choice.timings_ms["onnx-fp32/openvino"] == 99.0
    assert len(asked) == 3 and len(json.loads(path.read_text())["entries"]) == 2


def test_deploy_profile_comes_before_measurements_and_device_profiles(rt_onnx_bundle, cache, fake_timing):
    asked, _ = fake_timing
    m = load_manifest(rt_onnx_bundle)
    prof = DeployProfile(artifact="onnx-fp32", artifact_format="onnx", precision="fp32", backend="openvino", threads=1,
                         bundle={"name": m.name, "version": m.version}, device={"profile": "rpi5"},
                         measured={"p50_ms": 4.1}, reason="lowest p50; accuracy within 0.010 of the best (0.985)")
    write_deploy_profile(prof, rt_onnx_bundle)
    with Classifier.load(rt_onnx_bundle, profile="x86-64") as clf:
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-fp32", "openvino", "deploy-profile")
        assert clf.backend.threads == 1 == clf.choice.threads
        assert clf.choice.reason == "deploy-profile.yaml: lowest p50; accuracy within 0.010 of the best (0.985)"
    with Classifier.load(rt_onnx_bundle, threads=2) as clf:  # the caller's threads win over the profile's
        assert clf.choice.source == "deploy-profile" and clf.backend.threads == 2
    with Classifier.load(rt_onnx_bundle, format="onnx", precision="int8") as clf:  # flags win over it
        assert clf.choice.source == "flags"
    with Classifier.load(rt_onnx_bundle, profile="x86-64", deploy_profile=False) as clf:  # ignored when asked
        assert clf.choice.source == "device-profile"
    # written for another version of the bundle: not used, and the reason says so
    write_deploy_profile(dataclasses.replace(prof, bundle={"name": m.name, "version": "0.9"}), rt_onnx_bundle)
    with Classifier.load(rt_onnx_bundle, threads=1) as clf:
        assert clf.choice.source == "timed"
        assert f"deploy-profile.yaml is for {m.name} 0.9, not {m.name} {m.version}: not used" in clf.choice.reason
    # backend auto (what `edgerec deploy --precision` writes): the first installed backend for the format
    write_deploy_profile(dataclasses.replace(prof, backend="auto", threads=None), rt_onnx_bundle)
    with Classifier.load(rt_onnx_bundle) as clf:
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-fp32", "onnxruntime", "deploy-profile")
    assert len(asked) == 1


def test_device_profile_applies_when_named(rt_onnx_bundle, cache, fake_timing):
    asked, _ = fake_timing
    # x86-64: OpenVINO int8 -> the int8 ONNX artifact, run by OpenVINO, without timing anything
    with Classifier.load(rt_onnx_bundle, profile="x86-64") as clf:
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-int8", "openvino", "device-profile")
        assert clf.choice.reason.startswith("device profile x86-64: openvino int8")
    # rpi5: LiteRT int8; the bundle has no TFLite, so its precision alone decides; its 4 threads apply
    with Classifier.load(rt_onnx_bundle, profile="rpi5") as clf:
        assert (clf.artifact.key, clf.backend.name, clf.backend.threads) == ("onnx-int8", "onnxruntime", 4)
        assert clf.choice.reason.startswith("device profile rpi5: int8")
    assert asked == []


def test_run_shows_the_choice_and_its_reason(rt_onnx_bundle, rt_video, tmp_path, cache, capsys):
    from edgerec.runtime._cli import main

    summ = tmp_path / "s.json"
    assert main([str(rt_onnx_bundle), "--source", str(rt_video), "--max-frames", "12", "--threads", "1", "--status",
                 "--jsonl", str(tmp_path / "r.jsonl"), "--summary-json", str(summ)]) == 0
    err = capsys.readouterr().err
    (model,) = json.loads(summ.read_text())["models"]
    assert model["source"] == "timed" and model["reason"].startswith("fastest of 6 timed at load")
    assert f"choice colours: {model['artifact']} on {model['backend']} (timed): {model['reason']}" in err  # at start
    assert f"{model['artifact']}/{model['backend']} [timed]" in err  # on the live status line
    assert f"model colours: {model['artifact']} on {model['backend']} (timed)" in err  # in the summary table



_SIGNAL_AFTER_TIMING = """
import os, signal, sys, threading
from edgerec.runtime import Classifier
got = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: got.set())
with Classifier.load(sys.argv[1], threads=1, choice_cache=False) as clf:
    assert clf.choice.source == "timed", clf.choice
    os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (the loading) thread
    assert got.wait(5)
    print("survived", clf.choice.short)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")
def test_a_signal_after_timing_is_survived(rt_onnx_bundle, cache):
    # OpenVINO gives the thread that compiles a model an alternate signal stack and can leave it pointing at
    # memory freed with the model: timing 4 OpenVINO candidates on the loading thread made `edgerec run` die of
    # SIGSEGV at SIGTERM. Timing runs on a thread of its own now.
    import subprocess

    r = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER_TIMING, str(rt_onnx_bundle)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "survived" in r.stdout, (r.returncode, r.stderr[-2000:])

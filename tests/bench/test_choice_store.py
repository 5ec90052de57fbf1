"""The device id that matches bench results to a device, and the runtime's choice from a result store."""

import dataclasses
import platform

import pytest

from edgerec.bench.fingerprint import device_id, fingerprint, hardware
from edgerec.bench.store import append_records
from edgerec.bundle import Verification, load_manifest, write_manifest
from edgerec.runtime import Classifier
from edgerec.runtime import choice as choice_mod


def _tree(root, *, model="Raspberry Pi 5 Model B Rev 1.0", cores=4, governor="ondemand"):
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (root / "proc/device-tree/model").write_text(model + "\x00")
    (root / "proc/cpuinfo").write_text("".join(f"processor\t: {i}\nCPU part\t: 0xd0b\n\n" for i in range(cores)))
    (root / "sys/devices/system/cpu/cpu0/cpufreq").mkdir(parents=True, exist_ok=True)
    (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").write_text(governor)
    (root / "proc/loadavg").write_text("3.5 1.0 0.5 1/100 42")
    return root


def test_device_id_is_the_kind_of_board_not_its_state(tmp_path):
    a = _tree(tmp_path / "a")
    hw = hardware(root=a)
    assert hw == {"board_model": "Raspberry Pi 5 Model B Rev 1.0", "cpu_model": "Arm CPU part 0xd0b", "cores": 4,
                  "machine": platform.machine()}
    assert device_id(hw) == device_id(fingerprint(root=a, path=""))  # a bench record's device matches
    b = _tree(tmp_path / "b", governor="performance")  # same board, other state: same id
    assert device_id(hardware(root=b)) == device_id(hw)
    c = _tree(tmp_path / "c", cores=2)
    assert device_id(hardware(root=c)) != device_id(hw)


@pytest.fixture
def no_timing(monkeypatch, tmp_path):
    """Timing at load reports 50 ms for everything and counts its calls."""
    monkeypatch.setenv("EDGEREC_CACHE", str(tmp_path / "cache"))
    real = choice_mod._time_candidates
    calls = []

    def fake(manifest, cands, opener, **_):
        timings, failed = real(manifest, cands, opener, rounds=1, calls=1, budget_s=0.0)
        calls.append(1)
        return dict.fromkeys(timings, 50.0), failed

    monkeypatch.setattr(choice_mod, "_time_candidates", fake)
    return calls


def _records(fake_record, m, here):
    bundle = {"name": m.name, "version": m.version}
    return [
        fake_record("onnx-fp32", "openvino", threads=2, p50=1.0, spread=0, device=here, bundle=bundle),
        fake_record("onnx-int8", "onnxruntime", threads=2, p50=2.0, spread=0, device=here, bundle=bundle),
        # faster, but measured elsewhere or for another version of the bundle: not evidence for this one
        fake_record("onnx-int8", "openvino", threads=2, p50=0.1, bundle=bundle,
                    device={"board_model": "Raspberry Pi 5", "cores": 4, "machine": "aarch64"}),
        fake_record("openvino-fp32", "openvino", threads=2, p50=0.05, device=here, bundle={**bundle, "version": "0.9"}),
    ]


def test_a_stored_result_for_this_device_decides(rt_onnx_bundle, fake_record, tmp_path, no_timing):
    m = load_manifest(rt_onnx_bundle)
    store = append_records(tmp_path / "results.jsonl", _records(fake_record, m, {**hardware(), "hostname": "x"}))
    with Classifier.load(rt_onnx_bundle, bench_store=store, profile="x86-64") as clf:  # before the device profile
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-fp32", "openvino", "bench-store")
        assert clf.choice.reason.startswith("lowest p50 stored for this device: 1 ms of 2 measured in results.jsonl")
        assert clf.backend.threads == 2 == clf.choice.threads  # the measured configuration
        assert clf.choice.timings_ms == {"onnx-fp32/openvino": 1.0, "onnx-int8/onnxruntime": 2.0}
    with Classifier.load(rt_onnx_bundle, bench_store=store, threads=1) as clf:  # nothing measured at 1 thread
        assert clf.choice.source == "timed"
    assert len(no_timing) == 1


def test_the_store_in_the_bundle_folder_is_found(rt_onnx_bundle, fake_record, no_timing):
    m = load_manifest(rt_onnx_bundle)
    append_records(rt_onnx_bundle / "edgerec-bench.jsonl", _records(fake_record, m, hardware()))
    with Classifier.load(rt_onnx_bundle) as clf:
        assert (clf.artifact.key, clf.choice.source) == ("onnx-fp32", "bench-store")
    with Classifier.load(rt_onnx_bundle, bench_store=False) as clf:
        assert clf.choice.source == "timed"


def test_stored_results_respect_the_accuracy_floor(rt_onnx_bundle, fake_record, tmp_path, no_timing):
    m = load_manifest(rt_onnx_bundle)
    arts = tuple(dataclasses.replace(a, verification=Verification(100, 0.9 if a.key == "onnx-fp32" else 0.99, 1.0, 0.0))
                 for a in m.artifacts)
    write_manifest(dataclasses.replace(m, artifacts=arts), rt_onnx_bundle)
    store = append_records(tmp_path / "results.jsonl", _records(fake_record, m, hardware()))
    with Classifier.load(rt_onnx_bundle, bench_store=store) as clf:  # the fastest stored one is 9 points worse
        assert (clf.artifact.key, clf.backend.name, clf.choice.source) == ("onnx-int8", "onnxruntime", "bench-store")
        assert "below that: onnx-fp32 (0.900)" in clf.choice.reason
    assert no_timing == []

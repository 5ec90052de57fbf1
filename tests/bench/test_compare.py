import pytest

from edgerec.bench.compare import check_budget, choose, compare_rows, plot_compare
from edgerec.errors import ConfigError

PI = {"profile": "rpi5", "hostname": "pi-a"}
ORIN = {"profile": "jetson-orin-nano", "hostname": "orin"}


@pytest.fixture
def records(fake_record):
    return [
        fake_record("tflite-int8", "litert", 4, p50=8.0, accuracy=0.95, device=PI),
        fake_record("tflite-fp32", "litert", 4, p50=20.0, accuracy=0.97, device=PI),
        fake_record("onnx-fp32", "onnxruntime", 4, p50=25.0, accuracy=0.97, device=PI),
        fake_record("onnx-fp32", "onnxruntime", 6, p50=9.0, accuracy=0.97, device=ORIN),
        # an older measurement of the same configuration: superseded
        fake_record("tflite-int8", "litert", 4, p50=50.0, accuracy=0.95, device=PI, timestamp="2025-01-01T00:00:00+00:00"),
    ]


def test_rows_keep_the_latest_per_device_and_configuration(records):
    rows = compare_rows(records)
    assert len(rows) == 4
    pi = [r for r in rows if r["device"] == "rpi5 (pi-a)"]
    assert [r["artifact"] for r in pi] == ["tflite-int8", "tflite-fp32", "onnx-fp32"]  # sorted by p50
    assert pi[0]["p50"] == pytest.approx(8.0, abs=0.2)


def test_chart_is_written(records, tmp_path):
    png = plot_compare(compare_rows(records), tmp_path / "c.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_budget_passes_and_fails_naming_the_closest(records):
    ok = check_budget(records, 10.0)
    assert ok.ok and ok.best["artifact"] == "tflite-int8" and len(ok.passed) == 2
    miss = check_budget(records, 5.0)
    assert not miss.ok and miss.closest["artifact"] == "tflite-int8"
    assert "closest: tflite-int8 litert 4 thr on rpi5 (pi-a)" in miss.message()
    floor = check_budget(records, 10.0, accuracy_floor=0.96)
    assert floor.ok and floor.best["artifact"] == "onnx-fp32" and floor.best["device"].startswith("jetson")
    none = check_budget(records, 100.0, accuracy_floor=0.99)
    assert not none.ok and "accuracy >= 0.990" in none.message()
    p99 = check_budget(records, 8.0, stat="p99")
    assert not p99.ok  # p99 is above the ~8 ms median
    with pytest.raises(ConfigError, match="did you mean"):
        check_budget(records, 1.0, stat="p55")


def test_choose_prefers_accurate_then_fast_then_fewer_threads(fake_record):
    recs = [
        fake_record("tflite-int8", "litert", 4, p50=5.0, accuracy=0.90),  # fast but 7 points worse
        fake_record("tflite-fp32", "litert", 4, p50=10.0, accuracy=0.97),
        fake_record("tflite-fp32", "litert", 2, p50=10.0, accuracy=0.97),  # a tie: fewer threads wins
        fake_record("onnx-fp32", "onnxruntime", 4, p50=30.0, accuracy=0.975),
    ]
    pick, reason = choose(recs)
    assert (pick["artifact"], pick["threads"]) == ("tflite-fp32", 2)
    assert "accuracy within 0.010" in reason and "fewer threads" in reason
    pick, _ = choose(recs, accuracy_floor=0.85)
    assert pick["artifact"] == "tflite-int8"
    with pytest.raises(ConfigError, match="no configuration meets"):
        choose(recs, budget_ms=1.0)

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def bench_bundle(tmp_path_factory):
    """A real bundle (ONNX fp32, TFLite fp32, OpenVINO fp16 of a tiny CNN) plus ``<bundle>-data``."""
    pytest.importorskip("torch")
    import torch

    torch.set_num_threads(1)
    from builder import build_bundle

    return build_bundle(tmp_path_factory.mktemp("bench") / "tiny")


@pytest.fixture
def fake_record():
    """A factory for schema-valid latency records without running anything."""
    from edgerec.bench.stats import summarize

    def make(artifact="tflite-int8", backend="litert", threads=2, p50=10.0, spread=1.0, accuracy=None,
             device=None, timestamp="2026-01-01T00:00:00+00:00", n=50, **extra):
        import zlib

        import numpy as np

        # same artifact and backend -> the same samples, whatever the thread count (ties are exact)
        rng = np.random.default_rng(zlib.crc32(f"{artifact}/{backend}".encode()))
        lat = (p50 + rng.normal(0, spread * 0.1, n).clip(-spread, spread)) * 1e6
        stats = summarize(lat)
        rec = {
            "format": "edgerec-bench/1", "kind": "latency", "id": f"{artifact}-{backend}-{threads}-{timestamp}",
            "timestamp": timestamp, "bundle": {"name": "tiny", "version": "1.0.0"},
            "artifact": artifact, "artifact_format": artifact.split("-")[0], "precision": artifact.split("-")[1],
            "file": f"model.{artifact.split('-')[0]}", "size_bytes": 1000, "backend": backend,
            "backend_version": "x", "threads": threads, "load_ms": 5.0, "first_inference_ms": 2 * p50,
            "warmup_runs": 5, "latency_ms": stats.to_dict(), "throughput_ips": stats.throughput,
            "rss_mb": {"before_load": 50.0, "after_load": 60.0, "peak": 61.0},
            "accuracy": {"top1": accuracy, "n": 100} if accuracy is not None else None,
            "input": {"source": "check_images", "n_images": 4},
            "device": device or {"profile": "rpi5", "hostname": "pi-a", "cores": 4},
            "warnings": [],
        }
        rec.update(extra)
        return rec

    return make

"""Soak: the loop on a looping video for ~2 minutes (EDGEREC_SOAK_SECONDS) with every headless sink attached.

Memory must stay flat after warm-up (no growth beyond a few MB) and every thread must be gone at shutdown.
"""

import json
import os
import resource
import threading
import time

import cv2
import pytest
from _fixtures.runtime import colour_frame

from edgerec.runtime import load_pipeline, open_source
from edgerec.runtime.loop import run_loop
from edgerec.runtime.sinks import open_sink

GROWTH_LIMIT_MB = 8.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.slow
def test_soak_flat_memory_and_clean_shutdown(rt_onnx_bundle, tmp_path):
    seconds = float(os.environ.get("EDGEREC_SOAK_SECONDS", "120"))
    video = tmp_path / "loop.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for i in range(60):
        vw.write(cv2.resize(colour_frame(("red", "green", "blue")[i // 20]), (320, 240)))
    vw.release()
    threads_before = threading.active_count()
    stop = threading.Event()
    samples: list[tuple[float, float]] = []

    def sample():
        t0 = time.monotonic()
        while not stop.wait(1.0):
            samples.append((time.monotonic() - t0, _rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    timer = threading.Timer(seconds, stop.set)
    sinks = [open_sink("jsonl", str(tmp_path / "r.jsonl")), open_sink("csv", str(tmp_path / "r.csv")),
             open_sink("http", 0), open_sink("video", str(tmp_path / "out.avi"), fps=30)]
    src = open_source(str(video), loop=True)
    with load_pipeline(rt_onnx_bundle, threads=1, smoothing=5) as pipe, src:
        sampler.start()
        timer.start()
        summary = run_loop(pipe, src, sinks, stop=stop, status=False)
    for s in sinks:
        s.close()
    timer.cancel()
    sampler.join(5)
    assert summary.stopped_by == "signal" and summary.frames > 100
    assert summary.source["dropped"] == 0  # a file: none dropped even when looping
    warm = [mb for t, mb in samples if t >= seconds * 0.2]
    assert len(warm) >= 5
    growth = max(warm[len(warm) // 2:]) - min(warm[: len(warm) // 2])
    (tmp_path / "soak.json").write_text(json.dumps({"frames": summary.frames, "fps": summary.fps,
                                                    "rss_mb": samples, "growth_mb": growth}))
    print(f"soak: {summary.frames} frames in {summary.seconds:.0f} s ({summary.fps:.1f} FPS), "
          f"RSS {warm[0]:.1f} -> {warm[-1]:.1f} MB, growth {growth:.2f} MB")
    assert growth < GROWTH_LIMIT_MB, samples
    time.sleep(0.5)
    assert not src.alive
    assert threading.active_count() == threads_before, [t.name for t in threading.enumerate()]

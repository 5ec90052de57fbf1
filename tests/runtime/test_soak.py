"""Soak: the loop on a looping video for ~2 minutes (EDGEREC_SOAK_SECONDS) with every headless sink attached,
while clients churn on the HTTP preview (MJPEG viewers that leave, JSON polls, silent sockets, resets).

Timeline (fractions of the run): warm-up to 0.2 (with one preview viewer, so the one-time cost of JPEG
encoding lands there), baseline to 0.35, client churn to 0.7, then settling. The
median RSS of the last fifth must be back within a few MB of the baseline's (flat memory, and nothing kept
from the churn), the preview's threads must go back to none once the churn stops, and every thread must be
gone at shutdown. Medians, because a burst of client threads moves RSS by a few MB for a second.
"""

import json
import os
import resource
import statistics
import socket
import struct
import threading
import time
import urllib.request

import cv2
import pytest
from _fixtures.runtime import colour_frame

from edgerec import limits
from edgerec.runtime import load_pipeline, open_source
from edgerec.runtime.loop import run_loop
from edgerec.runtime.sinks import open_sink

GROWTH_LIMIT_MB = 8.0
IDLE_TIMEOUT_S = 2.0  # the preview's idle timeout during the soak, so silent clients come and go within it


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _preview_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def _watch(port: int, frames: int) -> None:
    """One MJPEG viewer that watches ``frames`` frames and leaves."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        got = b""
        while got.count(b"--edgerecframe") < frames and len(got) < 1 << 22:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk


def _churn(port: int, stop: threading.Event, counts: dict) -> None:
    """Clients that come and go the ways real ones do, until ``stop``."""
    silent: list[socket.socket] = []
    while not stop.is_set():
        try:
            _watch(port, 2)  # a viewer that watches 2 frames
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/result", timeout=5) as r:  # a JSON poll
                r.read()
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))  # says nothing
            if len(silent) > 4:
                silent.pop(0).close()
            s = socket.create_connection(("127.0.0.1", port), timeout=5)  # a viewer that resets mid-stream
            s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            s.recv(1024)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            counts["connections"] += 4
        except OSError as exc:  # counted, not fatal: a refused client is the server doing its job
            counts["errors"] += 1
            counts["last_error"] = repr(exc)
        stop.wait(0.02)
    for s in silent:
        s.close()


@pytest.mark.slow
def test_soak_flat_memory_and_clean_shutdown(rt_onnx_bundle, tmp_path, monkeypatch):
    seconds = float(os.environ.get("EDGEREC_SOAK_SECONDS", "120"))
    monkeypatch.setattr(limits, "HTTP_IDLE_TIMEOUT_S", IDLE_TIMEOUT_S)
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
    http = open_sink("http", 0)
    sinks = [open_sink("jsonl", str(tmp_path / "r.jsonl")), open_sink("csv", str(tmp_path / "r.csv")),
             http, open_sink("video", str(tmp_path / "out.avi"), fps=30)]
    stop_churn, counts, settled = threading.Event(), {"connections": 0, "errors": 0}, []
    churner = threading.Thread(target=_churn, args=(http.port, stop_churn, counts), daemon=True)
    timers = [timer, threading.Timer(1.0, _watch, args=(http.port, 5)),
              threading.Timer(seconds * 0.35, churner.start), threading.Timer(seconds * 0.7, stop_churn.set),
              threading.Timer(seconds * 0.7 + IDLE_TIMEOUT_S + 3, lambda: settled.append(_preview_threads()))]
    src = open_source(str(video), loop=True)
    with load_pipeline(rt_onnx_bundle, threads=1, smoothing=5) as pipe, src:
        sampler.start()
        for t in timers:
            t.start()
        summary = run_loop(pipe, src, sinks, stop=stop, status=False)
    for s in sinks:
        s.close()
    for t in timers:
        t.cancel()
    stop_churn.set()
    churner.join(10)
    sampler.join(5)
    assert summary.stopped_by == "signal" and summary.frames > 100
    assert summary.source["dropped"] == 0  # a file: none dropped even when looping
    base = [mb for t, mb in samples if seconds * 0.2 <= t < seconds * 0.35]
    churn = [mb for t, mb in samples if seconds * 0.35 <= t < seconds * 0.7]
    end = [mb for t, mb in samples if t >= seconds * 0.8]
    assert len(base) >= 3 and len(end) >= 3
    baseline, final = statistics.median(base), statistics.median(end)
    growth = final - baseline
    (tmp_path / "soak.json").write_text(json.dumps({"frames": summary.frames, "fps": summary.fps, "rss_mb": samples,
                                                    "baseline_mb": baseline, "churn_peak_mb": max(churn),
                                                    "final_mb": final, "growth_mb": growth, "http": counts}))
    print(f"soak: {summary.frames} frames in {summary.seconds:.0f} s ({summary.fps:.1f} FPS), RSS median "
          f"{baseline:.1f} MB before the churn, peak {max(churn):.1f} during it, {final:.1f} at the end "
          f"(growth {growth:+.2f} MB); HTTP churn {counts['connections']} connections "
          f"({counts['errors']} refused or failed), preview threads after the churn: {settled}")
    assert growth < GROWTH_LIMIT_MB, samples
    assert counts["connections"] > 100 and counts["errors"] < counts["connections"] / 20, counts
    assert settled == [0], "the preview kept threads after its clients left"
    time.sleep(0.5)
    assert not src.alive
    assert threading.active_count() == threads_before, [t.name for t in threading.enumerate()]

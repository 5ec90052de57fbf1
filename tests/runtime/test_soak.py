"""Soak: the loop on a looping video for a minute (EDGEREC_SOAK_SECONDS) with every headless sink attached, in
its own process (what a board runs, so RSS is the runtime's own), while clients churn on the HTTP preview (MJPEG viewers that leave, JSON polls, silent sockets, resets).

Timeline (fractions of the run): warm-up to 0.2 (with one preview viewer, so the one-time cost of JPEG
encoding lands there), baseline to 0.35, client churn to 0.7, then settling. The
median RSS of the last fifth must be back within a few MB of the baseline's (flat memory, and nothing kept
from the churn), the preview's threads must go back to none once the churn stops, and every thread must be
gone at shutdown. Medians, because a burst of client threads moves RSS by a few MB for a second.
"""

import json
import os
import subprocess
import sys
import statistics
import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
from _fixtures.runtime import colour_frame


GROWTH_LIMIT_MB = 8.0
IDLE_TIMEOUT_S = 2.0  # the preview's idle timeout during the soak, so silent clients come and go within it


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
def test_soak_flat_memory_and_clean_shutdown(rt_onnx_bundle, tmp_path):
    seconds = float(os.environ.get("EDGEREC_SOAK_SECONDS", "60"))
    video = tmp_path / "loop.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for i in range(60):
        vw.write(cv2.resize(colour_frame(("red", "green", "blue")[i // 20]), (320, 240)))
    vw.release()
    # the loop runs in its own process, as on a board: its RSS is the runtime's, not this test process's
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_soak_child.py")), str(rt_onnx_bundle),
                              str(video), str(seconds), str(IDLE_TIMEOUT_S), str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "port").exists():
            assert child.poll() is None, child.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the loop process never opened its preview"
            time.sleep(0.1)
        port = int((tmp_path / "port").read_text())
        stop_churn, counts = threading.Event(), {"connections": 0, "errors": 0}
        churner = threading.Thread(target=_churn, args=(port, stop_churn, counts), daemon=True)
        timers = [threading.Timer(1.0, _watch, args=(port, 5)),
                  threading.Timer(seconds * 0.35, churner.start), threading.Timer(seconds * 0.7, stop_churn.set)]
        for t in timers:
            t.start()
        output, _ = child.communicate(timeout=seconds + 180)
    finally:
        if child.poll() is None:
            child.kill()
        stop_churn.set()
    for t in timers:
        t.cancel()
    churner.join(10)
    assert child.returncode == 0, output[-3000:]
    res = json.loads((tmp_path / "result.json").read_text())
    samples = res["rss_mb"]
    assert res["stopped_by"] == "signal" and res["frames"] > 100
    assert res["dropped"] == 0  # a file: none dropped even when looping
    base = [mb for t, mb in samples if seconds * 0.2 <= t < seconds * 0.35]
    churn = [mb for t, mb in samples if seconds * 0.35 <= t < seconds * 0.7]
    end = [mb for t, mb in samples if t >= seconds * 0.8]
    assert len(base) >= 3 and len(end) >= 3
    baseline, final = statistics.median(base), statistics.median(end)
    growth = final - baseline
    print(f"soak: {res['frames']} frames in {res['seconds']:.0f} s ({res['fps']:.1f} FPS), RSS median "
          f"{baseline:.1f} MB before the churn, peak {max(churn):.1f} during it, {final:.1f} at the end "
          f"(growth {growth:+.2f} MB); HTTP churn {counts['connections']} connections "
          f"({counts['errors']} refused or failed), preview threads after the churn: {res['settled']}")
    assert growth < GROWTH_LIMIT_MB, samples
    assert counts["connections"] > 50 and counts["errors"] < counts["connections"] / 20, counts
    assert res["settled"] == [0], "the preview kept threads after its clients left"
    assert not res["source_alive"]
    assert res["threads_left"] == [], res["threads_left"]

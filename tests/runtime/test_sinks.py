"""Each sink's output read back: JSON lines, CSV, an annotated video, the HTTP endpoints."""

import csv
import json
import urllib.request

import cv2
import numpy as np
import pytest
from _fixtures.runtime import colour_frame

from edgerec.errors import ConfigError
from edgerec.runtime import load_pipeline, open_source
from edgerec.runtime.loop import run_loop
from edgerec.runtime.sinks import open_sink
from edgerec.runtime.sinks.window import display_available


def _run(bundle, video, sinks, **kw):
    with open_source(str(video)) as src, load_pipeline(bundle, precision="fp32", threads=1) as pipe:
        return run_loop(pipe, src, sinks, status=False, **kw)


def test_jsonl_and_csv_parse_back(rt_onnx_bundle, rt_video, tmp_path):
    js, cs = tmp_path / "out.jsonl", tmp_path / "out.csv"
    sinks = [open_sink("jsonl", str(js)), open_sink("csv", str(cs))]
    summary = _run(rt_onnx_bundle, rt_video, sinks)
    for s in sinks:
        s.close()
    rows = [json.loads(line) for line in js.read_text().splitlines()]
    assert len(rows) == 40 == summary.frames
    assert [r["frame"] for r in rows] == list(range(40))
    assert [r["label"] for r in rows] == ["red"] * 20 + ["blue"] * 20
    assert set(rows[0]) >= {"timestamp", "frame", "label", "score", "top_k", "latency_ms"}
    assert set(rows[0]["latency_ms"]) == {"capture", "preprocess", "inference", "postprocess"}
    with open(cs) as f:
        table = list(csv.DictReader(f))
    assert [r["label"] for r in table] == [r["label"] for r in rows]
    assert float(table[0]["score"]) == pytest.approx(rows[0]["score"])
    assert table[0]["top_k"].startswith("red:")


def test_annotated_video_is_readable(rt_onnx_bundle, rt_video, tmp_path):
    out = tmp_path / "annotated.avi"
    sink = open_sink("video", str(out), fps=20)
    _run(rt_onnx_bundle, rt_video, [sink], max_frames=12)
    sink.close()
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3)
    # the label was drawn: the annotated frame differs from the plain red one in the text area
    assert np.abs(frames[0][:20].astype(int) - colour_frame("red")[:20]).mean() > 5
    with pytest.raises(ConfigError, match="unknown container"):
        open_sink("video", str(tmp_path / "x.gif"))


def test_http_result_and_mjpeg_on_loopback(rt_onnx_bundle, rt_video):
    sink = open_sink("http", 0)
    try:
        assert sink.host == "127.0.0.1"
        _run(rt_onnx_bundle, rt_video, [sink], max_frames=25)
        base = f"http://127.0.0.1:{sink.port}"
        result = json.loads(urllib.request.urlopen(base + "/result", timeout=5).read())
        assert result["label"] == "blue" and result["frame"] == 24
        snap = urllib.request.urlopen(base + "/snapshot.jpg", timeout=5).read()
        assert cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
        with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            head = r.read(200)
        assert b"Content-Type: image/jpeg" in head
        assert b"<img" in urllib.request.urlopen(base + "/", timeout=5).read()
    finally:
        sink.close()


def test_http_port_in_use_is_a_clear_error():
    first = open_sink("http", 0)
    try:
        with pytest.raises(ConfigError, match="cannot serve on 127.0.0.1"):
            open_sink("http", first.port)
    finally:
        first.close()


def test_window_without_display_is_refused(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    with pytest.raises(ConfigError, match="--http"):
        open_sink("window")


def test_unknown_sink():
    with pytest.raises(ConfigError, match="did you mean 'jsonl'"):
        open_sink("jsonlines")

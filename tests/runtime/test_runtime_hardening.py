"""`edgerec run` against hostile or mistaken input (issue #12: cases 5, 6, 7, 9, 10, 11, 12, 16).

Every refusal is one line with a fix and exit 2, before the model loads where the input allows it.
"""

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import cv2
import numpy as np
import pytest
from _fixtures.runtime import colour_frame

from edgerec import limits
from edgerec._imagesize import image_size
from edgerec.cli import main as cli_main
from edgerec.errors import ConfigError
from edgerec.runtime import Classifier, open_source
from edgerec.runtime.sinks import open_sink
from edgerec.runtime.sources import parse_uri

_BOMB = "\n".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] +
                  [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)] +
                  ["stages:", "  - bundle: *i"])


def _run(argv, capsys):
    root, handlers = logging.getLogger(), logging.getLogger().handlers[:]
    root.handlers = []  # `edgerec run` sets up logging on this test's stderr, not a closed one of an earlier test
    t0 = time.monotonic()
    try:
        rc = cli_main(argv)
    finally:
        root.handlers = handlers
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err, time.monotonic() - t0


def _one_line_error(err):
    """ClassName: message, then one fix line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 2 and "Error: " in lines[0] and lines[1].strip().startswith("fix:"), err
    return lines[0]


# -------------------------------------------------------------------------- case 5: image pixel limit


def test_case05_image_over_the_pixel_limit_is_skipped_before_decoding(tmp_path, monkeypatch):
    for name, side in (("a.png", 64), ("b_big.png", 300), ("c.png", 64)):
        cv2.imwrite(str(tmp_path / name), cv2.resize(colour_frame("red"), (side, side)))
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 200 * 200)
    decoded = []
    from edgerec.runtime.sources import images

    real = images.read_image_bgr
    monkeypatch.setattr(images, "read_image_bgr", lambda p, **k: decoded.append(os.path.basename(p)) or real(p, **k))
    with open_source(str(tmp_path)) as src:
        names = [os.path.basename(f.name) for f in src.frames()]
    assert names == ["a.png", "c.png"] and src.stats.corrupt == 1
    assert "b_big.png" not in decoded  # refused from its header: never allocated


def _png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_case05_a_30000px_png_that_claims_2_7_gb_is_skipped_with_the_default_limit(tmp_path):
    (tmp_path / "huge.png").write_bytes(_png_header(30000, 30000))
    cv2.imwrite(str(tmp_path / "ok.png"), colour_frame("blue"))
    with open_source(str(tmp_path)) as src:
        names = [os.path.basename(f.name) for f in src.frames()]
    assert names == ["ok.png"] and src.stats.corrupt == 1


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm", ".pgm"])
def test_image_size_reads_headers_of_every_runtime_format(tmp_path, ext):
    img = np.zeros((37, 53, 3), np.uint8) if ext != ".pgm" else np.zeros((37, 53), np.uint8)
    path = tmp_path / f"x{ext}"
    assert cv2.imwrite(str(path), img)
    assert image_size(path) == (53, 37)


def test_image_size_gif_and_garbage(tmp_path):
    (tmp_path / "a.gif").write_bytes(b"GIF89a" + struct.pack("<HH", 640, 480) + b"\0" * 20)
    (tmp_path / "b.jpg").write_bytes(b"not an image at all")
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00")  # cut inside the first segment
    assert image_size(tmp_path / "a.gif") == (640, 480)
    assert image_size(tmp_path / "b.jpg") is None and image_size(tmp_path / "c.jpg") is None


# ------------------------------------------------------------------------------- case 6: YAML bombs


def test_case06_billion_laughs_pipeline_is_refused_fast(tmp_path, capsys):
    (tmp_path / "bomb.yaml").write_text(_BOMB)
    rc, err, seconds = _run(["run", str(tmp_path / "bomb.yaml"), "--source", str(tmp_path)], capsys)
    assert rc == 2 and seconds < 2
    assert "expand this document to more than" in _one_line_error(err)


# ------------------------------------------------------------------- cases 7 and 16: thread counts


def test_case07_huge_thread_count_is_refused_before_loading(rt_onnx_bundle, tmp_path, capsys):
    rc, err, seconds = _run(["run", str(rt_onnx_bundle), "--source", str(tmp_path), "--threads", "100000"], capsys)
    assert rc == 2 and seconds < 2 and "model " not in err
    assert "--threads 100000 is out of range" in _one_line_error(err)


def test_case16_zero_minus_one_and_auto_mean_the_same_everywhere(rt_onnx_bundle, tmp_path):
    assert [limits.resolve_threads(v) for v in (None, "auto", 0, "0", -1, "-1", " AUTO ")] == [None] * 7
    assert limits.resolve_threads("3") == 3
    for bad in (-2, "two", 1.5, True, limits.max_threads() + 1):
        with pytest.raises(ConfigError):
            limits.resolve_threads(bad)
    for value in (0, -1, "auto", None):  # the library and every backend read them alike
        with Classifier.load(rt_onnx_bundle, format="onnx", threads=value) as clf:
            assert clf.backend.threads is None
    with Classifier.load(rt_onnx_bundle, format="onnx", threads=1) as clf:
        assert clf.backend.threads == 1
    from edgerec.bench._cli import _threads

    assert _threads("0,-1,auto") == (None,) and _threads("1,2") == (1, 2)
    with pytest.raises(ConfigError, match="out of range"):
        _threads("1,100000")


def test_case16_the_cli_accepts_zero_and_minus_one(rt_onnx_bundle, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "g.png"), colour_frame("green"))
    for value in ("0", "-1", "auto"):
        rc, err, _ = _run(["run", str(rt_onnx_bundle), "--source", str(tmp_path / "g.png"), "--threads", value,
                           "--jsonl", str(tmp_path / "r.jsonl")], capsys)
        assert rc == 0 and "threads=default" in err
    rc, err, _ = _run(["bundle", "verify", str(rt_onnx_bundle), "--threads", "-1"], capsys)
    assert rc == 0


# ------------------------------------------------------------------------ case 9: clear errors (run)


def test_case09_http_port_out_of_range_is_refused_before_loading(rt_onnx_bundle, tmp_path, capsys):
    rc, err, _ = _run(["run", str(rt_onnx_bundle), "--source", str(tmp_path), "--http", "70000"], capsys)
    assert rc == 2 and "model " not in err
    assert "--http 70000 is not a TCP port" in _one_line_error(err)


@pytest.mark.parametrize("flag", ["--csv", "--jsonl", "--summary-json", "--save-video"])
def test_case09_output_into_a_missing_folder_is_refused_before_the_run(rt_onnx_bundle, rt_video, tmp_path, capsys,
                                                                       flag):
    target = tmp_path / "missing" / "out.file"
    rc, err, _ = _run(["run", str(rt_onnx_bundle), "--source", str(rt_video), flag, str(target)], capsys)
    assert rc == 2 and "model " not in err  # nothing loaded, nothing run
    assert f"{flag} {target}: the folder {target.parent} does not exist" in _one_line_error(err)


@pytest.mark.parametrize("key,value,message", [
    ("threshold", "abc", "threshold: expected float, got 'abc'"),
    ("smoothing", "abc", "smoothing: expected int, got 'abc'"),
    ("threshold", "1.5", "threshold must be between 0 and 1"),
    ("threads", "many", "threads: expected a thread count"),
])
def test_case09_bad_gate_options_are_config_errors(rt_onnx_bundle, tmp_path, capsys, key, value, message):
    (tmp_path / "p.yaml").write_text(f"stages:\n  - bundle: {rt_onnx_bundle}\n  - bundle: {rt_onnx_bundle}\n"
                                     f"    name: second\n    when: score >= 0.5\n    {key}: {value}\n")
    rc, err, _ = _run(["run", str(tmp_path / "p.yaml"), "--source", str(tmp_path)], capsys)
    assert rc == 2 and message in err


def test_case09_non_utf8_pipeline_yaml(tmp_path, capsys):
    (tmp_path / "p.yaml").write_bytes("stages:\n  - bundle: caf\u00e9/\n".encode("latin-1"))
    rc, err, _ = _run(["run", str(tmp_path / "p.yaml"), "--source", str(tmp_path)], capsys)
    assert rc == 2 and "is not UTF-8 text" in _one_line_error(err)


# --------------------------------------------------------------------- case 10: HTTP preview limits


def _handler_threads():
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_case10_idle_connections_are_capped_and_timed_out(monkeypatch):
    monkeypatch.setattr(limits, "HTTP_MAX_CONNECTIONS", 4)
    monkeypatch.setattr(limits, "HTTP_IDLE_TIMEOUT_S", 2.0)
    sink = open_sink("http", 0)
    socks = []
    try:
        sink.write(colour_frame("red"), {"label": "red", "score": 1.0})
        for _ in range(40):  # connect and say nothing
            socks.append(socket.create_connection(("127.0.0.1", sink.port), timeout=5))
        time.sleep(0.5)
        assert 1 <= len(_handler_threads()) <= 4
        answers, most = [], 0
        for s in socks:  # over the cap: refused at once, without a thread; the others are closed when idle
            s.settimeout(10)
            answers.append(s.recv(64))
            most = max(most, len(_handler_threads()))
        assert most <= 4
        assert all(a == b"" or a.startswith(b"HTTP/1.0 503") for a in answers), answers
        assert sum(a.startswith(b"HTTP/1.0 503") for a in answers) >= 10, answers
        deadline = time.monotonic() + 5
        while _handler_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _handler_threads() == []  # the idle ones were closed after the timeout
        with urllib.request.urlopen(f"{sink.url}result", timeout=5) as r:  # and it still serves
            assert json.loads(r.read())["label"] == "red"
    finally:
        for s in socks:
            s.close()
        sink.close()


def test_case10_a_preview_client_that_stops_reading_is_dropped(monkeypatch):
    monkeypatch.setattr(limits, "HTTP_IDLE_TIMEOUT_S", 0.5)
    sink = open_sink("http", 0)
    try:
        s = socket.create_connection(("127.0.0.1", sink.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        big = (np.random.default_rng(0).integers(0, 255, (480, 640, 3))).astype(np.uint8)  # poorly compressible
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sink.write(big, {"label": "x", "score": 0.5})
            time.sleep(0.01)
            if not _handler_threads():
                break
        assert _handler_threads() == []
        s.close()
    finally:
        sink.close()


# ------------------------------------------------------------------- case 11: SIGTERM during open


def test_case11_sigterm_while_a_stream_is_still_opening(rt_onnx_bundle, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()  # accepts, never answers
    port = listener.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgerec.cli", "run", str(rt_onnx_bundle), "--source",
                             f"http://127.0.0.1:{port}/stream.mjpg", "--threads", "1", "--no-status"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline:  # FFmpeg has connected: the open is in progress
            time.sleep(0.05)
        assert held, "the stream was never opened"
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert proc.returncode == 0 and seconds < 3, (seconds, err)
    assert "stopped by signal" in err and "Traceback" not in err


# ----------------------------------------------------------------------- case 12: literal paths


def test_case12_existing_paths_with_glob_characters_are_literal(tmp_path):
    folder = tmp_path / "shots [1]"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), colour_frame("red"))
    odd = tmp_path / "what?*.png"
    cv2.imwrite(str(odd), colour_frame("green"))
    assert parse_uri(str(folder)).kind == "folder"
    assert parse_uri(str(odd)).kind == "image"
    assert parse_uri(f"file://{folder}").kind == "folder"
    with open_source(str(folder)) as src:
        assert len(list(src)) == 1
    assert parse_uri(str(tmp_path / "*.png")).kind == "glob"  # a pattern that is not a path still globs
    from edgerec.errors import SourceError

    with pytest.raises(SourceError, match="does not exist|not a camera"):
        parse_uri(f"file://{tmp_path}/*.png")  # file:// is a path, never a pattern

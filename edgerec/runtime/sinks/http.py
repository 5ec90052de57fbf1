"""``--http PORT``: the latest result as JSON (``/result``), an MJPEG preview (``/stream.mjpg``), a still
(``/snapshot.jpg``) and a tiny page (``/``). Loopback only unless another host is named explicitly.

JPEG encoding happens in the client's thread, once per new frame, so an unwatched preview costs one
reference copy per frame.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from ...errors import ConfigError
from ._base import Sink, annotate

__all__ = ["HttpSink"]

_PAGE = b"""<!doctype html><title>edgerec</title><body style="margin:0;background:#111;color:#eee;font:14px sans-serif">
<img src="/stream.mjpg" style="max-width:100%"><pre id="r"></pre><script>
setInterval(async()=>{document.getElementById('r').textContent=JSON.stringify(await (await fetch('/result')).json(),null,1)},500)
</script></body>"""
_BOUNDARY = "edgerecframe"


class _State:
    def __init__(self):
        self.cond = threading.Condition()
        self.seq = 0
        self.image = None
        self.record: dict = {}
        self.jpeg: tuple[int, bytes] | None = None  # (seq, bytes) cache
        self.closed = False

    def jpeg_for(self, seq: int) -> bytes | None:
        with self.cond:
            if self.jpeg is not None and self.jpeg[0] == seq:
                return self.jpeg[1]
            image, record = self.image, self.record
        if image is None:
            return None
        ok, buf = cv2.imencode(".jpg", annotate(image, record), [cv2.IMWRITE_JPEG_QUALITY, 80])
        data = buf.tobytes() if ok else None
        with self.cond:
            if data is not None:
                self.jpeg = (seq, data)
        return data


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep stderr for the status line
            pass

        def _send(self, body: bytes, ctype: str, code: int = 200):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            if path == "/":
                self._send(_PAGE, "text/html")
            elif path == "/result":
                with state.cond:
                    body = json.dumps(state.record).encode()
                self._send(body, "application/json")
            elif path == "/snapshot.jpg":
                data = state.jpeg_for(state.seq)
                if data is None:
                    self._send(b"no frame yet", "text/plain", 503)
                else:
                    self._send(data, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(b"not found: try /, /result, /stream.mjpg, /snapshot.jpg", "text/plain", 404)

        def _stream(self):
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            last = -1
            try:
                while True:
                    with state.cond:
                        state.cond.wait_for(lambda: state.seq != last or state.closed, timeout=1.0)
                        if state.closed:
                            return
                        seq = state.seq
                    if seq == last:
                        continue
                    last = seq
                    data = state.jpeg_for(seq)
                    if data is None:
                        continue
                    self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode())
                    self.wfile.write(data + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


class HttpSink(Sink):
    wants_frames = True

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.state = _State()
        try:
            self.server = ThreadingHTTPServer((host, int(port)), _handler(self.state))
        except OSError as exc:
            raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}",
                              hint="choose another --http port, or stop whatever holds it") from exc
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="edgerec-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def write(self, image, record):
        with self.state.cond:
            self.state.image = image
            self.state.record = record
            self.state.seq += 1
            self.state.cond.notify_all()

    def close(self):
        with self.state.cond:
            self.state.closed = True
            self.state.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

"""``--http PORT``: the latest result as JSON (``/result``), an MJPEG preview (``/stream.mjpg``), a still
(``/snapshot.jpg``) and a tiny page (``/``). Loopback only unless another host is named explicitly.

JPEG encoding happens on one encoder thread, once per new frame and only while a client waits for one, so
an unwatched preview costs one reference copy per frame, and the large buffers (annotated copy, JPEG) live in
that one thread: clients that come and go leave no per-thread heaps behind (glibc gives each thread its own).

At most ``limits.HTTP_MAX_CONNECTIONS`` clients are served at once (one thread each); the next ones get
``503`` and are closed without a thread. A connection that sends nothing, or a preview client that stops
reading, for ``limits.HTTP_IDLE_TIMEOUT_S`` seconds is closed, so idle sockets cannot pile up threads.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from ... import limits
from ...errors import ConfigError
from ._base import Sink, annotate

__all__ = ["HttpSink", "check_port"]

log = logging.getLogger("edgerec.runtime.sinks.http")
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n"
         b"Connection: close\r\n\r\ntoo many clients; try again")


def check_port(port, what: str = "port") -> int:
    """``port`` as an int in 0..65535 (0: any free port), else ``ConfigError``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{what} {port!r} is not a TCP port (0..65535)", hint="e.g. --http 8080 (0 picks a free one)")
    return port

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
        self.jpeg: tuple[int, bytes] | None = None  # (seq, bytes) of the newest encoded frame
        self.wanted = 0  # clients waiting for a JPEG
        self.closed = False

    def encode_forever(self) -> None:
        """The encoder thread: the newest frame as JPEG, whenever a client waits and a new frame came."""
        done = -1
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.closed or (self.wanted and self.image is not None and self.seq != done))
                if self.closed:
                    return
                seq, image, record = self.seq, self.image, self.record
            ok, buf = cv2.imencode(".jpg", annotate(image, record), [cv2.IMWRITE_JPEG_QUALITY, 80])
            with self.cond:
                done = seq
                if ok:
                    self.jpeg = (seq, buf.tobytes())
                self.cond.notify_all()

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """``(seq, jpeg)`` of a frame newer than ``after``, waiting up to ``timeout`` s; None on timeout or close."""
        with self.cond:
            self.wanted += 1
            self.cond.notify_all()
            try:
                self.cond.wait_for(lambda: self.closed or (self.jpeg is not None and self.jpeg[0] > after), timeout)
                return None if self.closed or self.jpeg is None or self.jpeg[0] <= after else self.jpeg
            finally:
                self.wanted -= 1


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        timeout = limits.HTTP_IDLE_TIMEOUT_S  # socket timeout: idle or stalled clients are dropped

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
                with state.cond:
                    newest = state.seq
                got = state.next_jpeg(newest - 1, timeout=2.0)
                if got is None:
                    self._send(b"no frame yet", "text/plain", 503)
                else:
                    self._send(got[1], "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(b"not found: try /, /result, /stream.mjpg, /snapshot.jpg", "text/plain", 404)

        def _stream(self):
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            with state.cond:
                last = state.seq - 1  # from the newest frame on
            try:
                while not state.closed:
                    got = state.next_jpeg(last, timeout=1.0)
                    if got is None:
                        continue
                    last, data = got
                    self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode())
                    self.wfile.write(data)  # written as it is: no per-client copy of the frame
                    self.wfile.write(b"\r\n")
            except OSError:  # gone, reset, or stopped reading for the idle timeout
                return

    return Handler


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a cap on concurrent connections (threads)."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # one thread for this client
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):  # a client that misbehaves is not the run's problem
        log.debug("http client %s failed", client_address, exc_info=True)


class HttpSink(Sink):
    wants_frames = True

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.state = _State()
        check_port(port, "--http")
        try:
            self.server = _Server((host, port), _handler(self.state), limits.HTTP_MAX_CONNECTIONS)
        except OSError as exc:
            raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}",
                              hint="choose another --http port, or stop whatever holds it") from exc
        self.host, self.port = host, self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="edgerec-http", daemon=True)
        self._encoder = threading.Thread(target=self.state.encode_forever, name="edgerec-http-jpeg", daemon=True)
        self._thread.start()
        self._encoder.start()

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
        self._encoder.join(timeout=5)

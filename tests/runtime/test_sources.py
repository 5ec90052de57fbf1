"""Sources: URI parsing, every kind that can exist here, newest-frame semantics, reconnect, corrupt frames."""

import threading
import time

import cv2
import numpy as np
import pytest
from _fixtures.runtime import colour_frame

from edgerec.errors import SourceError
from edgerec.runtime import open_source, parse_uri
from edgerec.runtime.sources import Source
from edgerec.runtime.sources.csi import csi_pipeline
from edgerec.runtime.sources.images import ImageSource
from edgerec.runtime.sources.video import VideoFileSource


@pytest.mark.parametrize("uri,kind,target", [
    ("0", "v4l2", "0"),
    ("/dev/video2", "v4l2", "/dev/video2"),
    ("v4l2:///dev/video1", "v4l2", "/dev/video1"),
    ("csi://1", "csi", "1"),
    ("csi://", "csi", "0"),
    ("picam://0", "picam", "0"),
    ("rtsp://user:pw@cam.local:554/stream1", "stream", "rtsp://user:pw@cam.local:554/stream1"),
    ("https://example.com/live.m3u8", "stream", "https://example.com/live.m3u8"),
    ("gst://videotestsrc ! videoconvert ! appsink", "gst", "videotestsrc ! videoconvert ! appsink"),
    ("photos/**/*.jpg", "glob", "photos/**/*.jpg"),
])
def test_parse_uri(uri, kind, target):
    p = parse_uri(uri)
    assert (p.kind, p.target) == (kind, target)


def test_parse_paths(tmp_path, rt_video):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), colour_frame("red"))
    assert parse_uri(str(img)).kind == "image"
    assert parse_uri(str(tmp_path)).kind == "folder"
    assert parse_uri(str(rt_video)).kind == "video"
    assert parse_uri(f"file://{rt_video}").kind == "video"
    with pytest.raises(SourceError, match="did you mean 'rtsps?'"):
        parse_uri("rtps://cam/stream")
    with pytest.raises(SourceError, match="is not a camera, URL, file or folder"):
        parse_uri(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="camera number"):
        parse_uri("csi://front")


def test_video_file_in_order_none_dropped(rt_video):
    with open_source(str(rt_video)) as src:
        assert isinstance(src, VideoFileSource) and not src.live
        frames = list(src.frames())
    assert [f.index for f in frames] == list(range(40))
    assert src.stats.dropped == 0 and src.stats.delivered == 40
    assert frames[0].image[..., 2].mean() > 150 and frames[-1].image[..., 0].mean() > 150  # red ... blue


def test_video_loop_and_slow_consumer_drops_nothing(rt_video):
    with open_source(str(rt_video), loop=True) as src:
        got = []
        for f in src.frames():
            got.append(f.index)
            if len(got) == 5:
                time.sleep(0.2)  # the reader waits on its bounded queue
            if len(got) == 90:
                break
    assert got == list(range(90))
    assert src.stats.dropped == 0


def test_image_folder_glob_and_corrupt_files(tmp_path):
    for i, name in enumerate(["red", "green", "blue"]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), colour_frame(name))
    (tmp_path / "1b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as src:
        frames = list(src.frames())
    assert [f.name.rsplit("/", 1)[-1] for f in frames] == ["0.png", "1.png", "2.png"]
    assert src.stats.corrupt == 1
    with open_source(str(tmp_path / "*.png")) as src:
        assert len(list(src)) == 3
    with open_source(str(tmp_path / "2.png")) as src:
        (img,) = list(src)
        assert img.shape == (48, 64, 3)
    with pytest.raises(SourceError, match="no images"):
        with open_source(str(tmp_path / "*.webp")):
            pass


class _Counter(Source):
    """A fake camera: frame i is filled with i, one every 2 ms; fails on request."""

    live = True
    kind = "fake"

    def _open(self):
        self.opens = getattr(self, "opens", 0) + 1
        if getattr(self, "refuse_opens", 0):
            self.refuse_opens -= 1
            raise SourceError("camera busy")
        self.i = getattr(self, "i", 0)

    def _read(self):
        time.sleep(0.002)
        if getattr(self, "fail_at", None) == self.i:
            self.fail_at = None
            return None
        self.i += 1
        if self.i == 7:
            return np.zeros((0, 0, 3), np.uint8)  # a frame that arrived broken
        return np.full((2, 2, 3), self.i % 251, np.uint8)


def test_live_source_always_gives_the_newest_frame():
    with _Counter("fake") as src:
        first = src.read(timeout=2)
        time.sleep(0.3)  # the loop is busy; ~100 frames arrive meanwhile
        produced = src.i
        newest = src.read(timeout=2)
    assert newest.index > first.index + 20
    assert newest.index >= produced - 3  # the newest one, not the next in line
    assert src.stats.dropped >= 20
    assert src.stats.corrupt == 1
    assert src.stats.captured == src.stats.delivered + src.stats.dropped + (1 if not src._latest_taken else 0)


def test_live_source_reconnects_with_backoff(caplog):
    src = _Counter("fake", backoff=(0.01, 0.05))
    src.fail_at, src.refuse_opens = 5, 0
    with caplog.at_level("WARNING", logger="edgerec.runtime.sources"), src:
        src.refuse_opens = 0
        seen = [src.read(timeout=2).index for _ in range(3)]
        time.sleep(0.1)
        after = src.read(timeout=2)
    assert src.stats.reconnects == 1 and src.opens == 2
    assert after is not None and after.index > seen[-1]
    assert "reconnecting" in caplog.text and "reconnected" in caplog.text


def test_live_source_gives_up_after_retries():
    src = _Counter("fake", retries=2, backoff=(0.01, 0.02))
    src.fail_at = 3
    with src:
        src.refuse_opens = 10
        with pytest.raises(SourceError, match="gave up after 2 reconnect attempts"):
            while src.read(timeout=2) is not None:
                pass


def test_http_mjpeg_stream_and_reconnect_after_drop():
    from edgerec.runtime.sinks.http import HttpSink

    stop = threading.Event()

    def feed(sink):
        i = 0
        while not stop.is_set():
            sink.write(np.full((48, 64, 3), (i * 20) % 256, np.uint8), {"label": "x", "score": 0.5})
            i += 1
            time.sleep(0.02)

    sink = HttpSink(0)
    port = sink.port
    th = threading.Thread(target=feed, args=(sink,), daemon=True)
    th.start()
    src = open_source(f"http://127.0.0.1:{port}/stream.mjpg", retries=20)
    src.backoff = (0.1, 0.5)
    try:
        with src:
            assert src.live and src.kind == "stream"
            assert all(src.read(timeout=10).image.shape == (48, 64, 3) for _ in range(3))
            stop.set()
            th.join()
            sink.close()  # the stream drops
            stop.clear()
            sink = HttpSink(port)
            th = threading.Thread(target=feed, args=(sink,), daemon=True)
            th.start()
            again = [src.read(timeout=15) for _ in range(3)]
            assert all(f is not None for f in again)
            assert src.stats.reconnects >= 1
    finally:
        stop.set()
        th.join()
        sink.close()
    assert not src.alive  # no stuck reader thread


def test_no_camera_lists_video_devices(monkeypatch):
    from edgerec.runtime.sources import camera

    monkeypatch.setattr(camera, "video_devices", lambda: [])
    with pytest.raises(SourceError, match="no /dev/video"):
        open_source("/dev/video7").start()
    monkeypatch.setattr(camera, "video_devices", lambda: ["/dev/video0", "/dev/video2"])
    with pytest.raises(SourceError) as e:
        open_source("/dev/video7").start()
    assert "video devices present: /dev/video0, /dev/video2" in str(e.value)


def test_csi_and_gst_need_gstreamer(monkeypatch):
    from edgerec.runtime.sources import gst

    assert "nvarguscamerasrc sensor-id=1" in csi_pipeline(1, 640, 480, 30)
    assert "width=640, height=480, framerate=30/1" in csi_pipeline(1, 640, 480, 30)
    monkeypatch.setattr(gst, "has_gstreamer", lambda: False)
    with pytest.raises(SourceError, match="GStreamer"):
        open_source("csi://0").start()
    with pytest.raises(SourceError, match="GStreamer"):
        open_source("gst://videotestsrc ! appsink").start()


def test_picam_without_picamera2_is_a_clear_error():
    with pytest.raises(SourceError, match="picamera2"):
        open_source("picam://0").start()


def test_image_source_direct_use(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), colour_frame("green"))
    src = ImageSource(str(tmp_path), mode="folder", loop=True)
    with src:
        got = [src.read(timeout=2).name for _ in range(3)]
    assert len(set(got)) == 1


def test_picam_says_which_piece_is_missing(tmp_path):
    from edgerec.runtime.sources.picam import missing_picamera2

    nothing = ModuleNotFoundError("No module named 'picamera2'", name="picamera2")
    msg, fix = missing_picamera2(nothing, system_site=tmp_path)
    assert "not installed" in msg and "apt install python3-picamera2" in fix and "pip cannot" in fix
    (tmp_path / "picamera2").mkdir()  # installed by apt, but this venv was made without --system-site-packages
    msg, fix = missing_picamera2(nothing, system_site=tmp_path)
    assert "installed for the system Python" in msg and "--system-site-packages" in fix
    msg, fix = missing_picamera2(ModuleNotFoundError("No module named 'libcamera'", name="libcamera"), system_site=tmp_path)
    assert "libcamera" in msg and "python3-libcamera" in fix

"""``edgerec capture``: good, new frames into DIR/<label>/; duplicates, blurred, dark and overexposed ones
skipped; the counter counts what is there; nothing overwritten; bad labels, a full disk and a lost camera
each a clear stop."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from _fixtures.capture import FakeSource, blurred, dark, overexposed, textured, write_clip
from edgerec.capture import store
from edgerec.capture.session import INDEX_NAME, CaptureOptions, capture
from edgerec.errors import ConfigError, SourceError
from edgerec.runtime.roi import parse_roi
from edgerec.runtime.sources import open_source


def _run(src_path, out, **kw):
    kw.setdefault("fps", 0)
    kw.setdefault("target", 0)
    with open_source(str(src_path)) as src:
        return capture(src, out, CaptureOptions(**kw))


def _images(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")


def test_static_scene_gives_one_image(tmp_path):
    clip = write_clip(tmp_path / "static.avi", [textured(0)] * 30)
    s = _run(clip, tmp_path / "data", label="cup")
    assert s.kept == 1 and s.rejected["duplicate"] == 29
    assert len(_images(tmp_path / "data" / "cup")) == 1


def test_new_scenes_kept_bad_frames_rejected(tmp_path):
    frames = [textured(i) for i in range(6)]
    frames += [blurred(textured(10)), blurred(textured(11)), dark(textured(12)), overexposed(textured(13))]
    s = _run(write_clip(tmp_path / "mix.avi", frames), tmp_path / "data", label="cup")
    assert s.kept == 6
    assert s.rejected == {"duplicate": 0, "blurry": 2, "dark": 1, "overexposed": 1}
    assert len(_images(tmp_path / "data" / "cup")) == 6


def test_index_line_per_image(tmp_path):
    clip = write_clip(tmp_path / "c.avi", [textured(i, 120, 160) for i in range(3)])
    s = _run(clip, tmp_path / "data", label="cup", roi=parse_roi("40,20,80,80"))
    lines = [json.loads(x) for x in (tmp_path / "data" / "cup" / INDEX_NAME).read_text().splitlines()]
    assert [x["file"] for x in lines] == [os.path.basename(f) for f in s.files]
    first = lines[0]
    assert first["label"] == "cup" and first["source"] == str(clip) and first["roi"] == [40, 20, 80, 80]
    assert first["frame_size"] == [160, 120] and len(first["hash"]) == 16 and first["sharpness"] > 100
    assert first["host"] and first["time"].endswith("Z")
    import cv2

    assert cv2.imread(s.files[0]).shape[:2] == (80, 80)  # the ROI is what is kept


def test_counter_counts_existing_images_and_stops_at_target(tmp_path):
    cls = tmp_path / "data" / "cup"
    cls.mkdir(parents=True)
    for i in range(5):
        (cls / f"old{i}.jpg").write_bytes(b"x")
    (cls / "notes.txt").write_text("not an image")
    clip = write_clip(tmp_path / "c.avi", [textured(i) for i in range(10)])
    s = _run(clip, tmp_path / "data", label="cup", target=8)
    assert (s.existing, s.kept, s.total, s.stopped_by) == (5, 3, 8, "target reached")


def test_max_and_video_time_rate(tmp_path):
    clip = write_clip(tmp_path / "c.avi", [textured(i) for i in range(40)], fps=20)  # 2 s of video
    assert _run(clip, tmp_path / "a", label="cup", max_images=4).kept == 4
    s = _run(clip, tmp_path / "b", label="cup", fps=2)  # one every 0.5 s of video time
    assert s.kept == 4 and s.rate_skipped == 36


def test_second_run_skips_what_the_first_kept(tmp_path):
    clip = write_clip(tmp_path / "c.avi", [textured(i) for i in range(4)])
    assert _run(clip, tmp_path / "data", label="cup").kept == 4
    again = _run(clip, tmp_path / "data", label="cup")
    assert again.kept == 0 and again.rejected["duplicate"] == 4 and again.existing == 4


def test_never_overwrites(tmp_path, monkeypatch):
    import edgerec.capture.session as session

    cls = tmp_path / "data" / "cup"
    cls.mkdir(parents=True)
    (cls / "same_1.jpg").write_bytes(b"precious")
    monkeypatch.setattr(session, "frame_stem", lambda t, host, n: f"same_{n}")  # every name collides once
    s = _run(write_clip(tmp_path / "c.avi", [textured(i) for i in range(2)]), tmp_path / "data", label="cup")
    assert (cls / "same_1.jpg").read_bytes() == b"precious"
    assert sorted(os.path.basename(f) for f in s.files) == ["same_2.jpg", "same_3.jpg"]


@pytest.mark.parametrize("label", ["", "..", ".", "../evil", "a/b", "a\\b", ".hidden", "-rf"])
def test_bad_labels_refused(tmp_path, label):
    with pytest.raises(ConfigError, match="label"):
        CaptureOptions(label=label)
    from edgerec.cli import main

    assert main(["capture", str(tmp_path / "none.avi"), str(tmp_path / "data"), f"--label={label}"]) == 2
    assert not (tmp_path / "data").exists()


def test_disk_full_stops_cleanly_and_keeps_what_was_written(tmp_path, monkeypatch):
    real_fdopen, calls = os.fdopen, []

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])  # a partial file, as a real full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, *a, **k):
        calls.append(fd)
        f = real_fdopen(fd, *a, **k)
        return Full(f) if len(calls) == 3 else f

    monkeypatch.setattr(store.os, "fdopen", fdopen)
    s = _run(write_clip(tmp_path / "c.avi", [textured(i) for i in range(6)]), tmp_path / "data", label="cup")
    cls = tmp_path / "data" / "cup"
    assert s.stopped_by == "disk full" and "full" in s.message and "fix:" in s.message
    assert s.kept == 2 and len(_images(cls)) == 2  # the partial third file is gone, the first two kept
    assert len((cls / INDEX_NAME).read_text().splitlines()) == 2


def test_free_space_floor(tmp_path, monkeypatch):
    import edgerec.capture.session as session

    monkeypatch.setattr(session, "free_bytes", lambda folder: 10_000_000)
    s = _run(write_clip(tmp_path / "c.avi", [textured(0)]), tmp_path / "data", label="cup", min_free_mb=50)
    assert s.kept == 0 and s.stopped_by == "disk full" and "50 MB" in s.message


def test_camera_lost_mid_capture(tmp_path):
    src = FakeSource([textured(i) for i in range(3)], SourceError("v4l2 source 0 stopped delivering frames"))
    s = capture(src, tmp_path / "data", CaptureOptions(label="cup", fps=2, target=0))
    assert (s.kept, s.stopped_by) == (3, "source lost") and "stopped delivering" in s.message


def test_cli(tmp_path, capsys):
    from edgerec.cli import main

    clip = write_clip(tmp_path / "c.avi", [textured(i) for i in range(5)] + [textured(4)] * 5)
    rc = main(["capture", str(clip), str(tmp_path / "data"), "--label", "cup", "--fps", "0",
               "--summary-json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert rc == 0 and "5/200" in err and "5 new images" in err and "5 near-duplicates" in err
    assert json.loads((tmp_path / "s.json").read_text())["kept"] == 5
    assert np.all([p.stat().st_size > 0 for p in _images(tmp_path / "data" / "cup")])


def test_board_tier_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, edgerec.capture.session, edgerec.capture.doubt, edgerec.capture._cli; "
            "bad = [m for m in ('torch', 'tensorflow', 'PIL', 'edgerec.train', 'edgerec.export') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

"""``edgerec run --collect``: the frames the model doubts are saved with its prediction beside them, the
confident ones are not; the rate cap, the size cap (pulled frames first, then the oldest), the free-space
floor and a full disk are each enforced and counted, and never stop the recognition loop."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from _fixtures.capture import mixed_colour, write_clip
from _fixtures.runtime import colour_frame
from edgerec.capture import store
from edgerec.capture.doubt import PULLED_NAME, CollectSink, DoubtPolicy, doubt_reasons
from edgerec.errors import ConfigError

SURE = {"label": "red", "score": 0.99, "top_k": [["red", 0.99], ["blue", 0.01]]}
UNSURE = {"label": "blue", "score": 0.54, "top_k": [["blue", 0.54], ["red", 0.46]]}


def _sidecars(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _noise(seed, h=48, w=64):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_reasons_table():
    p = DoubtPolicy()
    assert doubt_reasons(SURE, "red", p) == []
    assert doubt_reasons(UNSURE, "blue", p) == ["low score", "small margin"]
    assert doubt_reasons({**SURE, "score": 0.7, "top_k": [["red", 0.7], ["blue", 0.6]]}, "red", p) == ["small margin"]
    assert doubt_reasons(SURE, "blue", p) == ["label flip"]
    assert doubt_reasons(SURE, None, p) == []  # the first frame has nothing to flip from
    assert doubt_reasons(SURE, "blue", DoubtPolicy(flips=False)) == []
    assert doubt_reasons({**SURE, "top_k": [["red", 0.99]]}, "red", p) == []  # --top-k 1: no margin to judge


@pytest.mark.parametrize("bad", [{"below": 1.5}, {"random_share": -0.1}, {"max_mb": -1}, {"image_format": "gif"}])
def test_policy_checked(bad):
    with pytest.raises(ConfigError):
        DoubtPolicy(**bad)


def test_loop_saves_the_doubtful_frames_only(rt_onnx_bundle, tmp_path):
    from edgerec.runtime.loop import run_loop
    from edgerec.runtime.pipeline import load_pipeline
    from edgerec.runtime.sources import open_source

    frames = [colour_frame("red")] * 10 + [mixed_colour("red", "blue", 0.45, seed=i) for i in range(8)] + [colour_frame("red")] * 10
    clip = write_clip(tmp_path / "clip.avi", frames)
    sink = CollectSink(tmp_path / "field", DoubtPolicy(random_share=0), meta={"model": "colours"})
    with load_pipeline(rt_onnx_bundle) as pipe, open_source(str(clip)) as src:
        run_loop(pipe, src, [sink], status=False)
    side = _sidecars(tmp_path / "field")
    # the 8 mixed frames (unsure) and the first red one after them (the answer flips back); none of the sure ones
    assert [s["frame"] for s in side] == list(range(10, 19))
    assert sink.stats.saved == 9 and sink.stats.frames == 28
    unsure = side[0]
    assert unsure["predicted"] == "blue" and 0.5 < unsure["score"] < 0.6 and unsure["top_k"][1][0] == "red"
    assert unsure["reasons"][:2] == ["low score", "small margin"] and unsure["model"] == "colours"
    assert side[-1]["reasons"] == ["label flip"] and side[-1]["previous_label"] == "blue" and side[-1]["predicted"] == "red"
    import cv2

    full = cv2.imread(str(tmp_path / "field" / unsure["file"]))
    assert full.shape == (48, 64, 3) and unsure["roi_file"] is None  # the frame as the camera gave it


def test_roi_saved_beside_the_full_frame(tmp_path):
    import cv2

    sink = CollectSink(tmp_path / "f", DoubtPolicy(random_share=0))
    sink.write(_noise(0, 120, 160), {**UNSURE, "roi": [10, 20, 64, 32], "frame": 7, "timestamp": 1.7e9})
    (side,) = _sidecars(tmp_path / "f")
    assert side["roi"] == [10, 20, 64, 32] and side["frame_size"] == [160, 120]
    assert cv2.imread(str(tmp_path / "f" / side["roi_file"])).shape == (32, 64, 3)
    assert cv2.imread(str(tmp_path / "f" / side["file"])).shape == (120, 160, 3)


def test_random_share_samples_sure_frames(tmp_path):
    sink = CollectSink(tmp_path / "f", DoubtPolicy(random_share=0.1, seed=1, max_per_minute=1000))
    for i in range(500):
        sink.write(_noise(0, 8, 8), {**SURE, "frame": i})
    assert 25 <= sink.stats.saved <= 80 and set(sink.stats.reasons) == {"random"}


def test_rate_cap(tmp_path):
    now = [0.0]
    sink = CollectSink(tmp_path / "f", DoubtPolicy(random_share=0, max_per_minute=5), clock=lambda: now[0])
    for i in range(20):
        now[0] = i * 1.0  # 20 unsure frames within 20 s
        sink.write(_noise(i), {**UNSURE, "frame": i})
    assert (sink.stats.saved, sink.stats.skipped_rate) == (5, 15)
    now[0] = 61.0  # a minute later there is room again
    sink.write(_noise(99), UNSURE)
    assert sink.stats.saved == 6


def test_size_cap_drops_pulled_frames_first_then_the_oldest(tmp_path):
    folder = tmp_path / "f"
    sink = CollectSink(folder, DoubtPolicy(random_share=0, max_per_minute=1000, max_mb=0.021))  # room for 4 frames of ~5 kB
    for i in range(3):
        sink.write(_noise(i), {**UNSURE, "frame": i})
    stems = [s["file"].split(".")[0] for s in _sidecars(folder)]
    (folder / PULLED_NAME).write_text(stems[1] + ".jpg\n")  # what data pull would write
    sink.write(_noise(3), {**UNSURE, "frame": 3})
    assert [s["frame"] for s in _sidecars(folder)] == [0, 1, 2, 3]  # full now
    sink.write(_noise(4), {**UNSURE, "frame": 4})
    assert [s["frame"] for s in _sidecars(folder)] == [0, 2, 3, 4]  # the pulled frame went first
    assert (sink.stats.evicted_pulled, sink.stats.evicted_oldest) == (1, 0)
    for i in range(5, 8):
        sink.write(_noise(i), {**UNSURE, "frame": i})
    assert [s["frame"] for s in _sidecars(folder)] == [4, 5, 6, 7]  # then the oldest
    assert (sink.stats.saved, sink.stats.evicted_pulled, sink.stats.evicted_oldest) == (8, 1, 3)
    assert sum(p.stat().st_size for p in folder.iterdir() if not p.name.startswith(".")) <= 21_000
    assert len(list(folder.glob("*.jpg"))) == 4  # no frame without its sidecar, no sidecar without its frame


def test_existing_frames_count_towards_the_cap(tmp_path):
    folder = tmp_path / "f"
    first = CollectSink(folder, DoubtPolicy(random_share=0, max_per_minute=1000, max_mb=0.021))
    for i in range(4):
        first.write(_noise(i), {**UNSURE, "frame": i})
    second = CollectSink(folder, DoubtPolicy(random_share=0, max_per_minute=1000, max_mb=0.021))  # the next run
    second.write(_noise(9), {**UNSURE, "frame": 9})
    assert second.stats.evicted_oldest >= 1 and 0 not in [s["frame"] for s in _sidecars(folder)]


def test_free_space_floor(tmp_path, monkeypatch):
    import edgerec.capture.doubt as doubt

    monkeypatch.setattr(doubt, "free_bytes", lambda folder: 150_000_000)
    sink = CollectSink(tmp_path / "f", DoubtPolicy(random_share=0, min_free_mb=200))
    sink.write(_noise(0), UNSURE)
    assert sink.stats.saved == 0 and sink.stats.skipped_disk == 1 and not list((tmp_path / "f").glob("*.jpg"))


def test_disk_full_stops_collecting_not_the_loop(tmp_path, monkeypatch):
    real_fdopen, calls = os.fdopen, []

    def fdopen(fd, *a, **k):
        calls.append(fd)
        if len(calls) == 3:  # the second frame's image: the disk fills up
            os.close(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(fd, *a, **k)

    monkeypatch.setattr(store.os, "fdopen", fdopen)
    sink = CollectSink(tmp_path / "f", DoubtPolicy(random_share=0, max_per_minute=1000))
    for i in range(5):
        sink.write(_noise(i), {**UNSURE, "frame": i})  # never raises
    assert sink.stats.saved == 1 and sink.stats.stopped.startswith("disk full")
    assert sorted(p.suffix for p in (tmp_path / "f").iterdir()) == [".jpg", ".json"]  # the first frame, whole


def test_cli_collect(rt_onnx_bundle, tmp_path, capsys):
    from edgerec.cli import main

    frames = [colour_frame("red")] * 5 + [mixed_colour("red", "blue", 0.45, seed=i) for i in range(4)]
    clip = write_clip(tmp_path / "clip.avi", frames)
    rc = main(["run", str(rt_onnx_bundle), "--source", str(clip), "--collect", str(tmp_path / "field"),
               "--collect-random", "0", "--no-status", "--jsonl", str(tmp_path / "out.jsonl"),
               "--summary-json", str(tmp_path / "s.json")])
    assert rc == 0
    assert "collect" in capsys.readouterr().err
    side = _sidecars(tmp_path / "field")
    assert [s["frame"] for s in side] == [5, 6, 7, 8] and side[0]["source"] == str(clip)
    assert json.loads((tmp_path / "s.json").read_text())["collect"]["saved"] == 4


def test_cli_refuses_bad_flags_before_loading(tmp_path):
    from edgerec.cli import main

    assert main(["run", str(tmp_path / "nope"), "--source", "x.avi", "--collect", str(tmp_path), "--collect-below", "2"]) == 2

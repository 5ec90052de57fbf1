"""Region of interest: parsing, the check on the first frame, per-call ROIs, the pipeline YAML, the CLI,
the rectangle on annotated frames; and the one-time warning when frames are squashed."""

import json
import logging

import numpy as np
import pytest
import yaml

from edgerec.errors import ConfigError, EdgerecError
from edgerec.runtime import Classifier, load_pipeline
from edgerec.runtime.roi import Roi, parse_roi
from edgerec.runtime.sinks._base import annotate


def _split_frame(h=48, w=128):
    """Left half red, right half blue (BGR)."""
    f = np.empty((h, w, 3), np.uint8)
    f[:, : w // 2] = (30, 40, 220)
    f[:, w // 2:] = (220, 40, 30)
    return f


def test_parse_pixels_and_fractions():
    assert parse_roi("200,40,480,480") == Roi(200, 40, 480, 480, fractions=False)
    assert parse_roi([0.125, 0, 0.75, 1]) == Roi(0.125, 0, 0.75, 1, fractions=True)
    assert parse_roi("0.125, 0, 0.75, 1").pixels(480, 640) == (80, 0, 480, 480)
    assert parse_roi("0,0,1,1").pixels(720, 1280) == (0, 0, 1280, 720)  # all within 0..1: fractions
    assert parse_roi(None) is None


@pytest.mark.parametrize("bad, match", [("1,2,3", "cannot read"), ("a,b,c,d", "cannot read"), ("0.5,0,0.75,1", "outside"),
                                        ("10,0,0.5,20", "mixes"), ("-1,0,10,10", ">= 0"), ("0,0,0,10", "> 0")])
def test_bad_rois_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_roi(bad)


def test_pixel_roi_outside_the_frame_names_both():
    with pytest.raises(ConfigError, match=r"outside the 640x480 frame") as err:
        parse_roi("600,0,100,100").pixels(480, 640)
    assert "x + w <= 640" in err.value.hint


def test_classifier_roi_load_and_per_call(rt_onnx_bundle):
    frame = _split_frame()
    with Classifier.load(rt_onnx_bundle, backend="onnxruntime", roi="0,0,0.5,1") as clf:
        assert clf.classify(frame).label == "red" and clf.last_roi == (0, 0, 64, 48)
        assert clf.classify(frame, roi=(64, 0, 64, 48)).label == "blue" and clf.last_roi == (64, 0, 64, 48)
        assert clf.classify(frame).label == "red"  # the loaded ROI again
    with Classifier.load(rt_onnx_bundle, backend="onnxruntime") as clf:
        clf.classify(frame)
        assert clf.last_roi is None
        assert [p.label for p in clf.classify_batch([frame, frame], roi="0.5,0,0.5,1")] == ["blue", "blue"]


def test_roi_outside_the_frame_fails_on_the_first_frame(rt_onnx_bundle, rt_video):
    from edgerec.runtime.loop import run_loop
    from edgerec.runtime.sources import open_source

    seen = []

    class Probe:
        wants_frames = False

        def write(self, image, record):
            seen.append(record["frame"])

        def close(self):
            pass

    with load_pipeline(rt_onnx_bundle, backend="onnxruntime", roi="32,0,64,48") as pipe, open_source(str(rt_video)) as src:
        with pytest.raises(ConfigError, match="outside the 64x48 frame"):
            run_loop(pipe, src, [Probe()], status=False)
    assert seen == []  # not a frame processed: the error is the first thing the run reports


def test_one_warning_when_frames_are_squashed(rt_onnx_bundle, caplog):
    with Classifier.load(rt_onnx_bundle, backend="onnxruntime") as clf, caplog.at_level(logging.WARNING, "edgerec.runtime"):
        for _ in range(3):
            clf.classify(np.zeros((480, 640, 3), np.uint8))
        clf.classify(np.zeros((720, 1280, 3), np.uint8))
        clf.classify(np.zeros((40, 40, 3), np.uint8))
    msgs = [r.getMessage() for r in caplog.records if "squashed" in r.getMessage()]
    assert len(msgs) == 1 and "640x480" in msgs[0] and "33%" in msgs[0] and "--roi 0.125,0,0.75,1" in msgs[0]
    caplog.clear()
    with Classifier.load(rt_onnx_bundle, backend="onnxruntime", roi="0.125,0,0.75,1") as clf, \
            caplog.at_level(logging.WARNING, "edgerec.runtime"):
        clf.classify(np.zeros((480, 640, 3), np.uint8))  # a square ROI: nothing is squashed
        clf.classify(np.zeros((48, 53, 3), np.uint8), roi=(0, 0, 53, 48))  # 10.4 % would warn; 8 % does not:
        clf.classify(np.zeros((48, 52, 3), np.uint8), roi=(0, 0, 52, 48))
    msgs = [r.getMessage() for r in caplog.records if "squashed" in r.getMessage()]
    assert len(msgs) == 1 and "53x48" in msgs[0]


def test_annotate_frames_the_roi():
    img = np.zeros((120, 160, 3), np.uint8)
    out = annotate(img, {"label": "x", "score": 0.5, "roi": [40, 20, 80, 60]})
    assert out[20, 80].tolist() == [0, 255, 255] and out[79, 40].tolist() == [0, 255, 255]  # top and left edges
    assert out[50, 80].tolist() == [0, 0, 0]  # inside stays as it was
    stages = {"label": "x", "score": 0.5, "stages": [{"name": "a", "ran": True, "label": "x", "score": 0.5, "roi": [0, 0, 10, 10]},
                                                     {"name": "b", "ran": False}]}
    assert annotate(img, stages)[5, 0].tolist() == [0, 255, 255]


def test_pipeline_yaml_roi_per_stage(rt_onnx_bundle, tmp_path):
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"stages": [
        {"name": "left", "bundle": str(rt_onnx_bundle), "backend": "onnxruntime", "roi": "0,0,0.5,1"},
        {"name": "right", "bundle": str(rt_onnx_bundle), "backend": "onnxruntime", "roi": [64, 0, 64, 48]},
    ]}))
    with load_pipeline(p) as pipe:
        rec = pipe.process(_split_frame()).to_dict()
    assert [(s["name"], s["label"], s["roi"]) for s in rec["stages"]] == [("left", "red", [0, 0, 64, 48]),
                                                                          ("right", "blue", [64, 0, 64, 48])]
    p.write_text(yaml.safe_dump({"stages": [{"bundle": str(rt_onnx_bundle), "roi": "0,0,2"}]}))
    with pytest.raises(ConfigError, match=r"stages\[0\]\.roi: cannot read ROI"):
        load_pipeline(p)


def test_cli_roi(rt_onnx_bundle, rt_video, tmp_path):
    from edgerec.runtime._cli import main

    out = tmp_path / "o.jsonl"
    assert main([str(rt_onnx_bundle), "--source", str(rt_video), "--roi", "0.5,0,0.5,1", "--max-frames", "3",
                 "--jsonl", str(out), "--backend", "onnxruntime", "--no-status"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 3 and all(r["roi"] == [32, 0, 32, 48] for r in recs)
    with pytest.raises(ConfigError, match="--roi: cannot read ROI"):
        main([str(rt_onnx_bundle), "--source", str(rt_video), "--roi", "left half"])
    with pytest.raises(EdgerecError, match="outside the 64x48 frame"):
        main([str(rt_onnx_bundle), "--source", str(rt_video), "--roi", "0,0,100,48", "--jsonl", str(out), "--no-status"])

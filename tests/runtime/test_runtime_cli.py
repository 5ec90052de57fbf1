"""``edgerec run`` end to end, the summary, signals, errors that name their cause."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import pytest
import yaml
from _fixtures.runtime import colour_frame

from edgerec.cli import main as cli_main
from edgerec.errors import EdgerecError
from edgerec.runtime import load_pipeline, open_source
from edgerec.runtime._cli import main
from edgerec.runtime.loop import run_loop


def test_run_writes_jsonl_and_summary(rt_onnx_bundle, rt_video, tmp_path, capsys):
    out, summ = tmp_path / "r.jsonl", tmp_path / "s.json"
    rc = main([str(rt_onnx_bundle), "--source", str(rt_video), "--jsonl", str(out), "--max-frames", "30",
               "--threads", "1", "--summary-json", str(summ), "--smooth", "3"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and rows[0]["label"] == "red"
    err = capsys.readouterr().err
    s = json.loads(summ.read_text())
    assert f"{s['models'][0]['artifact']} on" in err and "stopped by --max-frames" in err and "inference" in err
    assert s["frames"] == 30 and set(s["steps_ms"]) >= {"capture", "preprocess", "inference", "postprocess"}


def test_default_sink_is_jsonl_on_stdout(rt_onnx_bundle, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "g.png"), colour_frame("green"))
    assert main([str(rt_onnx_bundle), "--source", str(tmp_path / "g.png")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["label"] == "green" and json.loads(line)["name"].endswith("g.png")


def test_pipeline_yaml_through_cli(rt_onnx_bundle, rt_multilabel_bundle, rt_video, tmp_path, capsys):
    p = tmp_path / "gates.yaml"
    p.write_text(yaml.safe_dump({"stages": [
        {"name": "first", "bundle": str(rt_onnx_bundle)},
        {"name": "second", "bundle": str(rt_multilabel_bundle), "when": "label == blue"}]}))
    assert main([str(p), "--source", str(rt_video), "--max-frames", "40"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["stages"][1]["ran"] for r in rows] == [False] * 20 + [True] * 20
    assert rows[-1]["stage"] == "second"


def test_errors_reach_the_user_with_their_cause(rt_onnx_bundle, capsys, tmp_path):
    assert cli_main(["run", str(rt_onnx_bundle), "--source", str(tmp_path / "nope.mp4")]) == 2
    assert "SourceError" in capsys.readouterr().err
    assert cli_main(["run", str(tmp_path), "--source", "0"]) == 2
    assert "no edgerec.json" in capsys.readouterr().err


def test_a_failing_stage_names_frame_and_step(rt_onnx_bundle, rt_video):
    with open_source(str(rt_video)) as src, load_pipeline(rt_onnx_bundle) as pipe:
        pipe.stages[0][1].backend.invoke = lambda x: (_ for _ in ()).throw(RuntimeError("device lost"))
        with pytest.raises(EdgerecError, match="frame 0: inference failed: RuntimeError: device lost"):
            run_loop(pipe, src, [], status=False)


def test_sigterm_ends_cleanly_with_summary(rt_onnx_bundle, tmp_path):
    for i, name in enumerate(["red", "green", "blue"]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), colour_frame(name))
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgerec.cli", "run", str(rt_onnx_bundle), "--source", str(tmp_path),
                             "--loop", "--jsonl", str(out), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 10):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped by signal" in err
    for step in ("capture", "preprocess", "inference", "postprocess"):
        assert step in err
    assert "Traceback" not in err


def test_status_line_and_stage_table(rt_onnx_bundle, rt_multilabel_bundle, rt_video):
    import io

    from edgerec.runtime.pipeline import Pipeline

    stream = io.StringIO()
    with open_source(str(rt_video)) as src, Pipeline.from_bundle(rt_onnx_bundle) as first, \
            Pipeline.from_bundle(rt_multilabel_bundle) as second:
        import dataclasses

        (spec2, clf2), = second.stages
        pipe = Pipeline("two", first.stages + [(dataclasses.replace(spec2, name="second"), clf2)])
        s = run_loop(pipe, src, [], status=True, status_stream=stream, status_every=0.0)
    text = stream.getvalue()
    assert text.count("\r") >= 10 and "FPS" in text and "dropped 0" in text
    table = s.table()
    assert "stage" in table and s.stages_ms["second"]["runs"] == 40


def test_stop_is_seen_while_a_live_source_delivers_nothing(rt_onnx_bundle):
    import threading

    from edgerec.runtime.sources import Source

    class Silent(Source):
        live, kind = True, "silent"

        def _open(self):
            pass

        def _read(self):
            time.sleep(0.05)
            return None  # never a frame: the reader keeps reconnecting

    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    src = Silent("x", backoff=(0.05, 0.1))
    t0 = time.monotonic()
    with src, load_pipeline(rt_onnx_bundle) as pipe:
        s = run_loop(pipe, src, [], stop=stop, status=False)
    assert s.frames == 0 and s.stopped_by == "signal"
    assert time.monotonic() - t0 < 5


def test_source_defaults_to_the_profile_camera(rt_onnx_bundle, capsys):
    from edgerec.devices.device_profile import load_profile

    with pytest.raises(EdgerecError, match="no --source"):
        main([str(rt_onnx_bundle)])
    cam = load_profile("rpi5").camera_uri
    # no camera on this machine: the error names the profile's camera URI
    assert cli_main(["run", str(rt_onnx_bundle), "--profile", "rpi5"]) == 2
    err = capsys.readouterr().err
    assert "Error" in err and (cam.split("://")[-1] in err or "picamera2" in err or "camera" in err)

"""`make demo` runs `edgerec demo`: its quick mode goes through every verb and leaves every output."""

import json

import pytest


@pytest.mark.slow
def test_quick_demo_runs_every_step(tmp_path, capfd):
    from edgerec import cli

    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out), "--threads", "2"]) == 0
    text = capfd.readouterr().out
    for step in ("1. built-in dataset", "2. train", "3. export", "4. latency", "5. recognition loop", "summary"):
        assert step in text

    metrics = json.loads((out / "digits" / "metrics.json").read_text())
    # --qat --ptq: the int8 graph kept (the one agreeing more with fp32 on val) and the other one, both measured
    other = {"qat": "int8_ptq", "ptq": "int8_qat"}[metrics["int8_method"]]
    assert {"fp32", "int8", other} <= set(metrics["test"]) and metrics["int8_choice"]["kept"] == metrics["int8_method"]
    manifest = json.loads((out / "bundle" / "edgerec.json").read_text())
    keys = {f"{a['format']}-{a['precision']}" for a in manifest["artifacts"] if a["status"] == "ok"}
    assert keys == {f"{f}-{p}" for f in ("tflite", "onnx", "openvino") for p in ("fp32", "int8")}
    assert (out / "bundle.edgerec").is_file()
    assert sum(1 for _ in (out / "bench.jsonl").open()) >= 6

    # the loop answered every frame of the test video, in order
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    split = json.loads((out / "digits" / "split.json").read_text())
    assert [p["frame"] for p in preds] == list(range(len(split["test"])))
    assert "recognition loop on the video" in text

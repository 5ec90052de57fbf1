"""Gate pipelines: condition grammar (no eval), YAML checks, per-stage results."""

import numpy as np
import pytest
import yaml
from _fixtures.runtime import colour_frame

from edgerec.errors import ConfigError
from edgerec.runtime import load_pipeline
from edgerec.runtime.pipeline import parse_condition
from edgerec.runtime.postprocess import Prediction


def _pred(label, score, labels=None):
    return Prediction(label, score, 0, [(label, score)], np.zeros(1), labels if labels is not None else [label])


def test_condition_grammar():
    c = parse_condition("label in [car, 'pick up', van] and score >= 0.6")
    assert [(k.field, k.op) for k in c.clauses] == [("label", "in"), ("score", ">=")]
    assert c.clauses[0].value == ("car", "pick up", "van")
    assert c.holds("s", {"s": _pred("pick up", 0.7)})
    assert not c.holds("s", {"s": _pred("pick up", 0.5)})
    assert not c.holds("s", {"s": _pred("bus", 0.9)})
    assert parse_condition("label not in [bus]").holds("s", {"s": _pred("car", 0.1)})
    c = parse_condition("car.label == car and damage.score < 0.3")
    assert c.holds("damage", {"car": _pred("car", 0.9), "damage": _pred("ok", 0.2)})
    assert not c.holds("damage", {"car": None, "damage": _pred("ok", 0.2)})  # a stage that did not run
    # 'and' inside a label list is part of the label
    assert parse_condition("label in [salt and pepper]").clauses[0].value == ("salt and pepper",)


@pytest.mark.parametrize("bad", ["__import__('os').system('x')", "score >= high", "label in []", "", "label ~ car"])
def test_bad_conditions_are_config_errors(bad):
    with pytest.raises(ConfigError):
        parse_condition(bad)


def _write(tmp_path, stages, **extra):
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"stages": stages, **extra}))
    return p


def test_gates_run_and_skip(rt_onnx_bundle, rt_multilabel_bundle, tmp_path):
    p = _write(tmp_path, [
        {"name": "colour", "bundle": str(rt_onnx_bundle), "precision": "fp32"},
        {"name": "detail", "bundle": str(rt_multilabel_bundle), "when": "label in [red] and score >= 0.6"},
        {"name": "third", "bundle": str(rt_onnx_bundle), "when": "detail.label == red"},
    ])
    with load_pipeline(p, threads=1) as pipe:
        r = pipe.process(colour_frame("red"))
        assert [s.ran for s in r.stages] == [True, True, True]
        assert r.final.name == "third" and r.label == "red"
        d = r.to_dict()
        assert [s["name"] for s in d["stages"]] == ["colour", "detail", "third"]
        assert all(s["latency_ms"]["inference"] >= 0 for s in d["stages"])
        r = pipe.process(colour_frame("blue"))
        assert [s.ran for s in r.stages] == [True, False, False]
        assert r.label == "blue" and r.final.name == "colour"
        # a stage that did not run keeps every key of one that did (one record shape)
        d = r.to_dict()
        assert d["stages"][1] == {"name": "detail", "ran": False, "label": None, "score": None, "top_k": [], "labels": [],
                                  "roi": None, "latency_ms": {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}}
        assert d["stages"][1].keys() == d["stages"][0].keys()


def test_relative_bundle_paths_and_yaml_errors(rt_onnx_bundle, tmp_path):
    (tmp_path / "b").symlink_to(rt_onnx_bundle)
    ok = _write(tmp_path, [{"bundle": "b"}])
    with load_pipeline(ok) as pipe:
        assert pipe.process(colour_frame("green")).label == "green"
    with pytest.raises(ConfigError, match="did you mean 'when'"):
        load_pipeline(_write(tmp_path, [{"bundle": "b"}, {"bundle": "b", "wen": "score > 0.5"}]))
    with pytest.raises(ConfigError, match="first stage"):
        load_pipeline(_write(tmp_path, [{"bundle": "b", "when": "score > 0.5"}]))
    with pytest.raises(ConfigError, match="not an earlier stage"):
        load_pipeline(_write(tmp_path, [{"name": "a", "bundle": "b"}, {"bundle": "b", "when": "zz.score > 0.5"}]))
    with pytest.raises(ConfigError, match="stages"):
        load_pipeline(_write(tmp_path, []))


def test_the_per_frame_record_has_one_shape_for_one_model_and_a_cascade(rt_onnx_bundle, rt_multilabel_bundle, tmp_path):
    """What --jsonl writes: the same keys, in the same order, whatever the number of stages or which of them ran."""
    import json

    from _fixtures.capture import write_clip

    from edgerec.runtime.loop import run_loop
    from edgerec.runtime.pipeline import RECORD_SCHEMA
    from edgerec.runtime.sinks import open_sink
    from edgerec.runtime.sources import open_source

    clip = write_clip(tmp_path / "clip.avi", [colour_frame(c) for c in ("red", "blue", "red", "green")])
    cascade = _write(tmp_path, [
        {"name": "colour", "bundle": str(rt_onnx_bundle)},
        {"name": "detail", "bundle": str(rt_multilabel_bundle), "when": "label in [red] and score >= 0.6"},
    ])
    records = {}
    for name, target in (("single", rt_onnx_bundle), ("cascade", cascade)):
        out = tmp_path / f"{name}.jsonl"
        with load_pipeline(target) as pipe, open_source(str(clip)) as src, open_sink("jsonl", str(out)) as sink:
            run_loop(pipe, src, [sink], status=False)
        records[name] = [json.loads(ln) for ln in out.read_text().splitlines()]
    single, casc = records["single"], records["cascade"]
    assert len(single) == len(casc) == 4
    shapes = {tuple(r) for r in single + casc}
    assert len(shapes) == 1, shapes
    assert all(r["schema"] == RECORD_SCHEMA for r in single + casc)
    assert [len(r["stages"]) for r in single] == [1] * 4 and [len(r["stages"]) for r in casc] == [2] * 4
    stage_shapes = {tuple(st) for r in single + casc for st in r["stages"]}
    assert len(stage_shapes) == 1, "a stage that did not run keeps every key"
    assert [r["stages"][1]["ran"] for r in casc] == [True, False, True, False]
    assert set(single[0]["latency_ms"]) == {"capture", "preprocess", "inference", "postprocess"}
    assert single[0]["label"] == "red" and single[0]["stages"][0]["label"] == "red" and single[0]["name"] is None


def test_on_frame_sees_every_frame_s_times_and_can_stop_the_loop(rt_onnx_bundle, tmp_path):
    """The hook `edgerec bench --source` profiles the loop with: one call per frame, the STEPS' times, stop on True."""
    from _fixtures.capture import write_clip

    from edgerec.runtime.loop import STEPS, run_loop
    from edgerec.runtime.sources import open_source

    clip = write_clip(tmp_path / "clip.avi", [colour_frame(c) for c in ("red", "blue") * 5])
    seen = []

    def hook(t):
        seen.append(t)
        return len(seen) == 4

    with load_pipeline(rt_onnx_bundle) as pipe, open_source(str(clip)) as src:
        summary = run_loop(pipe, src, [], status=False, on_frame=hook)
    assert len(seen) == 4 and summary.frames == 4 and summary.stopped_by == "caller"
    assert all(tuple(t) == STEPS for t in seen)
    assert all(t["inference"] > 0 and t["total"] >= t["preprocess"] + t["inference"] + t["postprocess"] for t in seen)

import json

import pytest

from edgerec.bench.store import (
    StoreWarning,
    append_records,
    read_records,
    schema,
    validate_record,
)
from edgerec.errors import ConfigError


def test_append_and_read_round_trip(tmp_path, fake_record):
    path = tmp_path / "sub" / "store.jsonl"
    a, b = fake_record(threads=1), fake_record(threads=2)
    append_records(path, [a])
    append_records(path, [b])
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["format"] == "edgerec-bench/1" for line in lines)
    got = read_records(path)
    assert [r["threads"] for r in got] == [1, 2]
    assert got[1]["_line"] == 2 and got[1]["_store"] == str(path)
    assert got[0]["latency_ms"] == a["latency_ms"]


def test_corrupt_and_foreign_lines_are_skipped_with_a_warning_naming_the_line(tmp_path, fake_record):
    path = tmp_path / "store.jsonl"
    append_records(path, [fake_record(threads=1)])
    with open(path, "a") as f:
        f.write('{"format": "edgerec-bench/1", "kind": "latency", "trunc\n')  # a write cut short
        f.write('{"something": "else"}\n')
        f.write("\n")
    append_records(path, [fake_record(threads=4)])
    with pytest.warns(StoreWarning) as caught:
        got = read_records(path)
    assert [r["threads"] for r in got] == [1, 4]
    messages = [str(w.message) for w in caught]
    assert any(f"{path}:2" in m and "not valid JSON" in m for m in messages)
    assert any(f"{path}:3" in m and "not a edgerec-bench/1 record" in m for m in messages)


def test_invalid_record_is_refused_on_append(tmp_path, fake_record):
    bad = fake_record()
    del bad["latency_ms"]
    with pytest.raises(ConfigError, match="latency_ms"):
        append_records(tmp_path / "s.jsonl", [bad])
    assert not (tmp_path / "s.jsonl").exists()


def test_kind_filter_and_missing_store(tmp_path, fake_record):
    path = tmp_path / "s.jsonl"
    loop = fake_record()
    loop.update(kind="loop", source="clip.mp4", stages_ms={"inference": {"p50": 1.0, "p99": 2.0}}, fps=30.0,
                frames=10, dropped=0)
    validate_record(loop)
    append_records(path, [fake_record(), loop])
    assert [r["kind"] for r in read_records(path, kind="loop")] == ["loop"]
    with pytest.raises(ConfigError, match="not found"):
        read_records(tmp_path / "nope.jsonl")


def test_schema_is_a_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())

"""The release gate: a candidate bundle passes only when it beats the current one on test + field frames without
losing on the frozen test set; `deploy --require-gate` ships exactly the bundle that passed."""

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import pytest

from edgerec.bundle import load_manifest, write_manifest
from edgerec.cli import main
from edgerec.devices.gate import check_gate, gate
from edgerec.errors import ConfigError, DataError, DeployError

from _fixtures.runtime import COLOUR_LABELS, colour_frame, make_colour_onnx_bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """(good, confused): the same colour model; `confused` names red 'green' and green 'red' (a worse model)."""
    tmp = tmp_path_factory.mktemp("gate")
    good = make_colour_onnx_bundle(tmp / "good", openvino=False)
    confused = Path(shutil.copytree(good, tmp / "confused"))
    write_manifest(dataclasses.replace(load_manifest(confused), labels=("green", "red", "blue"), version="0"), confused)
    m = load_manifest(good)
    write_manifest(dataclasses.replace(m, version="2"), good)
    return good, confused


def _test_set(root: Path, per_class: int = 3) -> Path:
    for name in COLOUR_LABELS:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"{i}.png"), colour_frame(name, 40 + i, 60))
    return root


def _field(root: Path, labelled: list[tuple[str, str, str]]) -> Path:
    """A reviewed field folder: rows (board, true label, colour shown)."""
    rows = []
    for i, (board, label, shown) in enumerate(labelled):
        (root / board).mkdir(parents=True, exist_ok=True)
        stem = f"20260101-000000-{i:03d}_pi_{i:06d}"
        cv2.imwrite(str(root / board / f"{stem}.jpg"), colour_frame(shown))
        (root / board / f"{stem}.json").write_text(json.dumps({"file": f"{stem}.jpg"}))
        rows.append({"path": f"{board}/{stem}.jpg", "board": board, "predicted": "", "score": "", "reason": "low score",
                     "label": label})
    with open(root / "review.csv", "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    return root


def test_a_better_candidate_passes_a_worse_one_fails(bundles, tmp_path):
    good, confused = bundles
    test = _test_set(tmp_path / "test")
    field = _field(tmp_path / "field", [("kitchen", "red", "red"), ("kitchen", "green", "green"),
                                        ("garage", "blue", "blue"), ("garage", "purple", "blue")])
    r = gate(good, confused, test=test, field_dirs=[field], threads=1)
    assert r.passed, r.reason
    assert r.sets["test"] == {"n": 9, "candidate": 1.0, "current": 3 / 9}
    assert r.sets["field"]["boards"]["kitchen"] == {"n": 2, "candidate": 1.0, "current": 0.0}
    assert r.sets["field"]["boards"]["garage"] == {"n": 2, "candidate": 0.5, "current": 0.5}  # purple: neither knows it
    assert r.sets["combined"]["new_labels"] == ["purple"] and r.sets["combined"]["unknown_to_candidate"] == ["purple"]
    assert r.candidate["version"] == "2" and r.candidate["artifact"].startswith("onnx")

    worse = gate(confused, good, test=test, field_dirs=[field], threads=1)
    assert not worse.passed and "does not beat" in worse.reason
    same = gate(good, good, test=test, threads=1)
    assert not same.passed  # a tie is not a gain


def test_field_gains_cannot_buy_a_test_regression(bundles, tmp_path):
    good, confused = bundles
    test = _test_set(tmp_path / "test", per_class=1)
    # the confused model is right on these field frames (their true labels follow its naming) and wrong on the test set
    field = _field(tmp_path / "field", [("b", "green", "red")] * 6)
    r = gate(confused, good, test=test, field_dirs=[field], threads=1)
    assert r.sets["combined"]["candidate"] > r.sets["combined"]["current"]
    assert not r.passed and "frozen test set" in r.reason


def test_cli_writes_the_result_and_deploy_requires_it(bundles, tmp_path, capsys):
    good, confused = bundles
    test = _test_set(tmp_path / "test")
    out = tmp_path / "gate.json"
    assert main(["gate", str(good), "--current", str(confused), "--test", str(test), "--out", str(out), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "PASSED" in text and "frozen test" in text
    assert check_gate(good, out)["passed"]
    with pytest.raises(DeployError, match="another bundle"):
        check_gate(confused, out)
    # deploy refuses before any board is touched (the target does not exist)
    assert main(["deploy", str(confused), "nobody@127.0.0.1:1", "--require-gate", str(out)]) == 2
    assert "another bundle" in capsys.readouterr().err

    failed = tmp_path / "failed.json"
    assert main(["gate", str(confused), "--current", str(good), "--test", str(test), "--out", str(failed)]) == 1
    with pytest.raises(DeployError, match="did not pass"):
        check_gate(confused, failed)


def test_bad_input(bundles, tmp_path):
    good, confused = bundles
    with pytest.raises(ConfigError, match="needs images"):
        gate(good, confused)
    with pytest.raises(ConfigError, match="not a bundle folder"):
        gate(tmp_path, confused, test=tmp_path)
    (tmp_path / "f").mkdir()
    with pytest.raises(DataError, match="no review.csv"):
        gate(good, confused, field_dirs=[tmp_path / "f"])
    with pytest.raises(DeployError, match="not found"):
        check_gate(good, tmp_path / "missing.json")

"""``edgerec data review``: a contact sheet per predicted class and a CSV to fill in; labelled rows merged
into a training folder without overwriting, bad labels refused before anything is copied."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgerec.capture.doubt import CollectSink, DoubtPolicy
from edgerec.data.review import CSV_NAME, merge_review, write_review
from edgerec.errors import DataError


def _collect(folder, n=5):
    sink = CollectSink(folder, DoubtPolicy(random_share=0, max_per_minute=1000))
    for i in range(n):
        pred = "red" if i % 2 else "blue"
        img = np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        sink.write(img, {"label": pred, "score": 0.5, "top_k": [[pred, 0.5], ["green", 0.45]], "frame": i})
    return folder


def _fill(folder, labels):
    path = folder / CSV_NAME
    rows = list(csv.DictReader(open(path)))
    for r, lab in zip(rows, labels):
        r["label"] = lab
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    return rows


def test_sheets_and_csv(tmp_path):
    import cv2

    res = write_review(_collect(tmp_path / "field"))
    assert res.frames == 5 and set(res.sheets) == {"red", "blue"}
    assert cv2.imread(str(res.sheets["blue"])).shape[1] == 3 * 128  # 3 blue frames side by side
    rows = list(csv.DictReader(open(res.csv)))
    assert list(rows[0]) == ["path", "board", "predicted", "score", "reason", "label"]
    assert rows[0]["reason"] == "low score;small margin" and all(r["label"] == "" for r in rows)


def test_labels_survive_a_second_review(tmp_path):
    folder = _collect(tmp_path / "field")
    write_review(folder)
    _fill(folder, ["green"])
    assert write_review(folder).kept_labels == 1


def test_merge_copies_labelled_rows_never_overwrites(tmp_path):
    folder = _collect(tmp_path / "field")
    write_review(folder)
    rows = _fill(folder, ["green", "", "red"])
    (tmp_path / "data" / "green").mkdir(parents=True)
    (tmp_path / "data" / "green" / rows[0]["path"]).write_bytes(b"a different image, same name")
    res = merge_review(folder, tmp_path / "data")
    assert len(res.copied) == 2 and (tmp_path / "data" / "green" / rows[0]["path"]).read_bytes().startswith(b"a different")
    assert (tmp_path / "data" / "red" / rows[2]["path"]).is_file()
    again = merge_review(folder, tmp_path / "data")
    assert (len(again.copied), again.already_there) == (0, 2)  # run twice: nothing duplicated


@pytest.mark.parametrize("bad", ["../evil", "a/b", ".."])
def test_merge_refuses_bad_labels_before_copying(tmp_path, bad):
    folder = _collect(tmp_path / "field")
    write_review(folder)
    _fill(folder, ["red", bad])
    with pytest.raises(DataError, match="label"):
        merge_review(folder, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_cli(tmp_path, capsys):
    from edgerec.cli import main

    folder = _collect(tmp_path / "field")
    assert main(["data", "review", str(folder)]) == 0
    _fill(folder, ["red"])
    assert main(["data", "review", str(folder), "--into", str(tmp_path / "data")]) == 0
    assert "copied 1 frames" in capsys.readouterr().out
    assert main(["data", "review", str(tmp_path / "empty_nothing")]) == 2


def test_pulled_board_folders_review_merge_and_field_accuracy(tmp_path):
    """After `data pull` the frames lie in FIELD/<board>/: one review covers every board, paths stay relative,
    and the labels a person fills in give each board's field accuracy."""
    from edgerec.data.review import field_accuracy

    field = tmp_path / "field"
    _collect(field / "kitchen", n=4)
    _collect(field / "garage", n=2)
    res = write_review(field)
    assert res.frames == 6 and (field / "review" / "red.png").is_file()
    rows = list(csv.DictReader(open(field / CSV_NAME)))
    assert {r["board"] for r in rows} == {"kitchen", "garage"}
    assert all(r["path"].startswith(r["board"] + "/") for r in rows)
    # kitchen: 2 of its 4 predictions confirmed; garage: both corrected
    labels = {}
    for r in rows:
        labels[r["path"]] = "green" if r["board"] == "garage" else r["predicted"]
    kitchen = sorted(r["path"] for r in rows if r["board"] == "kitchen")
    labels[kitchen[0]] = labels[kitchen[1]] = "green"
    _fill(field, [labels[r["path"]] for r in rows])
    acc = field_accuracy(field)
    assert acc["boards"]["kitchen"]["accuracy"] == 0.5 and acc["boards"]["kitchen"]["labelled"] == 4
    assert acc["boards"]["garage"]["accuracy"] == 0.0
    assert acc["all"]["correct"] == 2 and acc["all"]["random_accuracy"] is None  # no random share was collected
    merged = merge_review(field, tmp_path / "train")
    assert len(merged.copied) == 6 and len(list((tmp_path / "train" / "green").iterdir())) == 4


def test_merge_refuses_a_path_outside_the_folder(tmp_path):
    field = _collect(tmp_path / "field", n=1)
    write_review(field)
    rows = list(csv.DictReader(open(field / CSV_NAME)))
    rows[0]["path"], rows[0]["label"] = "../../etc/passwd", "red"
    with open(field / CSV_NAME, "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match="not a path inside"):
        merge_review(field, tmp_path / "train")
    assert not (tmp_path / "train").exists()

"""check_dataset and the `edgerec data` verbs: report contents, JSON output, exit codes."""

import json

import numpy as np
import pytest
from PIL import Image

from _data_helpers import make_folder, truncate, write_image
from edgerec.cli import main as cli
from edgerec.data import check_dataset
from edgerec.data.check import MAX_ASPECT


@pytest.fixture
def messy(tmp_path):
    """Every kind of trouble check_dataset looks for, in one small folder."""
    root = make_folder(tmp_path / "messy", {"cat": 6, "dog": 3, "fox": 2}, size=(40, 40))
    (root / "cat" / "zero.jpg").write_bytes(b"")
    truncate(write_image(root / "cat" / "cut.png", size=(64, 64)))
    (root / "dog" / "fake.png").write_text("not a png")
    (root / "dog" / "readme.txt").write_text("notes")
    # exact duplicates: one within a class, one across classes (a label conflict)
    (root / "cat" / "copy.png").write_bytes((root / "cat" / "000.png").read_bytes())
    (root / "fox" / "same_as_dog.png").write_bytes((root / "dog" / "000.png").read_bytes())
    # odd modes (converted, not problems), a tiny image and a panorama
    write_image(root / "cat" / "gray.png", mode="L", size=(40, 40))
    write_image(root / "cat" / "rgba.png", mode="RGBA", size=(40, 40))
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(root / "dog" / "sixteen.png")
    Image.new("CMYK", (40, 40), (10, 20, 30, 0)).save(root / "fox" / "print.jpg")
    write_image(root / "fox" / "tiny.png", size=(10, 12))
    write_image(root / "fox" / "pano.png", size=(200, 40))
    return root


def test_report_contents(messy):
    r = check_dataset(messy)
    assert r.usable and r.errors == [] and r.layout == "imagefolder"
    assert r.classes == ["cat", "dog", "fox"]
    assert r.counts == {"cat": 9, "dog": 4, "fox": 6}
    assert r.readable == 19 and r.files == 23
    kinds = {p["path"]: p["kind"] for p in r.problems}
    assert kinds == {"cat/zero.jpg": "empty", "cat/cut.png": "truncated", "dog/fake.png": "corrupt",
                     "dog/readme.txt": "not_image"}
    groups = {tuple(d["paths"]) for d in r.duplicates}
    assert groups == {("cat/000.png", "cat/copy.png"), ("dog/000.png", "fox/same_as_dog.png")}
    (conflict,) = r.label_conflicts
    assert conflict["classes"] == ["dog", "fox"]
    assert r.modes["L"] == 1 and r.modes["RGBA"] == 1 and r.modes["CMYK"] == 1
    assert any(m.startswith("I") for m in r.modes)
    assert [t["path"] for t in r.tiny] == ["fox/tiny.png"]
    assert [t["path"] for t in r.extreme_aspect] == ["fox/pano.png"] and 200 / 40 > MAX_ASPECT
    assert r.imbalance_ratio == pytest.approx(9 / 4)
    assert r.small_classes == {"cat": 9, "dog": 4, "fox": 6}
    assert r.sizes["width"]["max"] == 200 and r.sizes["height"]["min"] == 12
    assert r.sizes["common"][0] == {"size": [40, 40], "count": 17}
    text = " ".join(r.warnings)
    assert "3 classes under 200 images" in text and "different labels" in text and "3 file(s) do not decode" in text


def test_table_is_readable(messy):
    text = check_dataset(messy).table(width=140)
    for needle in ("images per class", "cat", "fox", "dog/fake.png", "label conflicts", "imbalance", "2.25",
                   "usable", "CMYK", "most common sizes: 40x40 (17)"):
        assert needle in text, needle


def test_presplit_counts_and_leaks(tmp_path):
    root = tmp_path / "ds"
    make_folder(root, {"a": 4, "b": 4}, split="train")
    make_folder(root, {"a": 2, "b": 2}, split="test")
    (root / "test" / "a" / "leak.png").write_bytes((root / "train" / "a" / "000.png").read_bytes())
    r = check_dataset(root)
    assert r.layout == "presplit" and r.split_counts == {"train": {"a": 4, "b": 4}, "test": {"a": 3, "b": 2}}
    (leak,) = r.split_leaks
    assert leak["splits"] == ["test", "train"] and not r.label_conflicts
    assert any("more than one split" in w for w in r.warnings)


def test_min_images_threshold(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 5, "b": 3})
    assert check_dataset(root, min_images=4).small_classes == {"b": 3}
    assert check_dataset(root, min_images=3).small_classes == {}


@pytest.mark.parametrize("layout,error", [
    ({}, "no classes"),
    ({"only": 3}, "single class 'only'"),
    ({"a": 2, "b": 0}, "class folder b has no readable images"),
])
def test_unusable_datasets_are_reported_not_raised(tmp_path, layout, error):
    root = make_folder(tmp_path / "ds", layout)
    r = check_dataset(root)
    assert not r.usable and any(error in e for e in r.errors), r.errors
    assert r.to_dict()["usable"] is False


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_check_ok_with_warnings_exits_0_and_writes_json(messy, tmp_path, capsys):
    assert cli(["data", "check", str(messy), "--json", str(tmp_path / "r" / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "images per class" in out and "label conflicts" in out
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["usable"] is True and data["counts"] == {"cat": 9, "dog": 4, "fox": 6}
    assert data["label_conflicts"] == 1 and len(data["problems"]) == 4


def test_cli_check_format_json(messy, capsys):
    assert cli(["data", "check", str(messy), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["imbalance_ratio"] == 2.25 and data["layout"] == "imagefolder"


@pytest.mark.parametrize("layout", [{}, {"only": 2}, {"a": 1, "b": 0}])
def test_cli_check_unusable_exits_1(tmp_path, layout, capsys):
    root = make_folder(tmp_path / "ds", layout)
    assert cli(["data", "check", str(root)]) == 1
    assert "error:" in capsys.readouterr().out


def test_cli_check_missing_path_exits_2(tmp_path, capsys):
    assert cli(["data", "check", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("DataError: dataset not found") and "fix:" in err


def test_cli_check_csv(tmp_path, capsys):
    for name in ("a1", "a2", "b1"):
        write_image(tmp_path / f"{name}.png")
    (tmp_path / "l.csv").write_text("path,label\na1.png,a\na2.png,a\nb1.png,b\nmissing.png,b\n")
    assert cli(["data", "check", str(tmp_path / "l.csv"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layout"] == "csv" and data["counts"] == {"a": 2, "b": 1}
    assert data["problems"][0]["kind"] == "missing"


def test_cli_digits_synth_and_split(tmp_path, capsys):
    assert cli(["data", "digits", str(tmp_path / "d"), "--size", "12", "--per-class", "6"]) == 0
    assert "wrote 60 images in 10 classes" in capsys.readouterr().out
    assert cli(["data", "digits", str(tmp_path / "d"), "--size", "12"]) == 2  # non-empty without --force
    assert "--force" in capsys.readouterr().err
    assert cli(["data", "synth", str(tmp_path / "s"), "--classes", "5", "--per-class", "3", "--size", "16",
                "--seed", "2"]) == 0
    assert "wrote 15 images in 5 classes" in capsys.readouterr().out
    assert cli(["data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "split.json"),
                "--ratios", "0.5", "0.25", "0.25"]) == 0
    data = json.loads((tmp_path / "split.json").read_text())
    assert (len(data["train"]), len(data["val"]), len(data["test"])) == (30, 15, 15)


def test_cli_check_montage(synth_dir, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "m.png"
    assert cli(["data", "check", str(synth_dir), "--montage", str(png)]) == 0
    im = np.asarray(Image.open(png).convert("RGB"))
    # 4 classes x (32 + 2) px rows + margin; 8 samples of 64 px cells beside the labels
    assert im.shape[0] == 4 * 66 + 2 and im.shape[1] > 8 * 64
    row0 = im[2:66, 150:]
    assert row0.std() > 20  # real pictures, not an empty canvas


def test_montage_marks_unreadable_cells_red(tmp_path):
    from PIL import Image

    from edgerec.data import load_dataset, write_montage

    root = make_folder(tmp_path / "ds", {"a": 1, "b": 1}, size=(64, 64))
    ds = load_dataset(root)
    (root / "b" / "000.png").write_bytes(b"")  # broken after loading
    out = write_montage(ds, tmp_path / "m.png", per_class=1, cell=32)
    im = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(im[2 + 34 + 16, 150 + 16], [220, 40, 40])

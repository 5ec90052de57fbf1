"""load_dataset: ImageFolder, pre-split folders, CSV (single and multi-label); bad input as DataError."""

import pytest

from _data_helpers import make_folder, truncate, write_image
from edgerec.data import load_dataset
from edgerec.errors import DataError


def test_imagefolder_classes_samples_and_relpaths(tmp_path):
    root = make_folder(tmp_path / "ds", {"cat": 3, "dog": 2, "bird": 1})
    write_image(root / "dog" / "nested" / "deep.jpg")  # sub-folders inside a class count
    (root / ".DS_Store").write_text("x")  # hidden files are ignored
    (root / "cat" / ".hidden.png").write_text("x")
    ds = load_dataset(root)
    assert ds.layout == "imagefolder" and not ds.presplit
    assert ds.classes == ("bird", "cat", "dog")
    assert len(ds) == 7 and ds.skipped == []
    assert ds.counts() == {"bird": 1, "cat": 3, "dog": 3}
    rel = sorted(ds.relpath(i) for i in range(len(ds)))
    assert "dog/nested/deep.jpg" in rel and all(not r.startswith("/") for r in rel)
    for s in ds.samples:
        assert ds.classes[s.label] == ds.relpath(s).split("/")[0] and s.split is None and s.path.is_absolute()


def test_corrupt_and_non_image_files_skipped_and_listed(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 3, "b": 3})
    (root / "a" / "zero.png").write_bytes(b"")
    truncate(write_image(root / "a" / "cut.png", size=(64, 64)))
    (root / "b" / "fake.jpg").write_text("not a jpeg")
    (root / "b" / "notes.txt").write_text("hello")
    (root / "stray.png").write_bytes(b"")
    ds = load_dataset(root)
    assert len(ds) == 6
    skipped = {p.name: reason for p, reason in ds.skipped}
    assert set(skipped) == {"zero.png", "cut.png", "fake.jpg", "notes.txt", "stray.png"}
    assert "empty" in skipped["zero.png"] and "truncated" in skipped["cut.png"]
    assert "not an image" in skipped["notes.txt"] and "class folder" in skipped["stray.png"]
    assert all(s.path.name not in skipped for s in ds.samples)


def test_header_only_verification_lets_truncated_through(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    truncate(write_image(root / "a" / "cut.png", size=(64, 64)))
    assert len(load_dataset(root, verify="header")) == 5  # documented: header mode does not decode
    assert len(load_dataset(root, verify="full")) == 4
    with pytest.raises(DataError, match="verify mode"):
        load_dataset(root, verify="quick")


def test_presplit_keeps_split_and_accepts_valid_alias(tmp_path):
    root = tmp_path / "ds"
    make_folder(root, {"a": 4, "b": 3}, split="train")
    make_folder(root, {"a": 2, "b": 1}, split="valid")
    make_folder(root, {"a": 1, "b": 1}, split="test")
    (root / "README.md").write_text("about")
    ds = load_dataset(root)
    assert ds.layout == "presplit" and ds.presplit
    assert [(p.name, r) for p, r in ds.skipped] == [("README.md", "not inside a split folder")]
    assert ds.classes == ("a", "b")
    assert len(ds.indices("train")) == 7 and len(ds.indices("val")) == 3 and len(ds.indices("test")) == 2
    assert ds.relpath(ds.indices("val")[0]).startswith("valid/")


def test_presplit_class_missing_from_train(tmp_path):
    root = tmp_path / "ds"
    make_folder(root, {"a": 2, "b": 2}, split="train")
    make_folder(root, {"a": 1, "c": 1}, split="val")
    with pytest.raises(DataError, match="'?c'? has no images in the train split|c has no images in the train"):
        load_dataset(root)


def test_mixed_split_and_class_folders(tmp_path):
    root = tmp_path / "ds"
    make_folder(root, {"a": 1, "b": 1}, split="train")
    make_folder(root, {"cat": 1})
    with pytest.raises(DataError, match="mixes split folders") as err:
        load_dataset(root)
    assert err.value.hint


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="not found") as err:
        load_dataset(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_no_classes(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(tmp_path / "ds")


def test_single_class(tmp_path):
    root = make_folder(tmp_path / "ds", {"only": 3})
    with pytest.raises(DataError, match="single class 'only'") as err:
        load_dataset(root)
    assert "another class" in err.value.hint


def test_empty_class_folder_named(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="has no readable images") as err:
        load_dataset(root)
    assert str(root / "empty") in str(err.value)


def test_class_folder_with_only_broken_files_is_empty(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "c").mkdir()
    (root / "c" / "z.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"no readable images \(1 unreadable file skipped\)"):
        load_dataset(root)


def test_file_that_is_not_csv(tmp_path):
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(DataError, match="not a .csv"):
        load_dataset(tmp_path / "x.txt")


# --------------------------------------------------------------------------------------------- CSV


def _csv_dataset(tmp_path, text, files=("img/a1.png", "img/a2.png", "img/b1.png", "img/b2.png")):
    for f in files:
        write_image(tmp_path / f)
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_csv_single_label_relative_paths(tmp_path):
    csv = _csv_dataset(tmp_path, "path,label\nimg/a1.png,apple\nimg/a2.png,apple\n\nimg/b1.png,banana\nimg/b2.png,banana\n")
    ds = load_dataset(csv)
    assert ds.layout == "csv" and ds.classes == ("apple", "banana") and len(ds) == 4
    assert ds.root == tmp_path.resolve() and ds.relpath(0) == "img/a1.png"
    assert [s.label for s in ds.samples] == [0, 0, 1, 1] and not ds.presplit


def test_csv_header_aliases_bom_and_split(tmp_path):
    text = "\ufeffFilename,Class,Split\nimg/a1.png,apple,train\nimg/a2.png,apple,valid\nimg/b1.png,banana,train\nimg/b2.png,banana,test\n"
    ds = load_dataset(_csv_dataset(tmp_path, text))
    assert ds.presplit and [s.split for s in ds.samples] == ["train", "val", "train", "test"]


def test_csv_multi_label(tmp_path):
    text = "path,labels\nimg/a1.png,cat;dog\nimg/a2.png,dog\nimg/b1.png,\nimg/b2.png, cat ; bird ;cat\n"
    ds = load_dataset(_csv_dataset(tmp_path, text), multi_label=True)
    assert ds.classes == ("bird", "cat", "dog") and ds.multi_label
    # order as written, duplicates dropped: the first label is the one stratification uses
    assert [s.labels for s in ds.samples] == [(1, 2), (2,), (), (1, 0)]
    assert ds.counts() == {"bird": 1, "cat": 2, "dog": 2}


def test_csv_several_labels_without_multi_label(tmp_path):
    with pytest.raises(DataError, match=r"labels.csv:2: several labels") as err:
        load_dataset(_csv_dataset(tmp_path, "path,label\nimg/a1.png,cat;dog\nimg/b1.png,cat\n"))
    assert "multi_label=True" in err.value.hint


def test_csv_missing_file_skipped(tmp_path):
    csv = _csv_dataset(tmp_path, "path,label\nimg/a1.png,a\nimg/gone.png,a\nimg/a2.png,a\nimg/b1.png,b\n")
    ds = load_dataset(csv)
    assert len(ds) == 3
    (path, reason), = ds.skipped
    assert path.name == "gone.png" and "labels.csv:3" in reason and "not found" in reason


def test_csv_missing_column(tmp_path):
    with pytest.raises(DataError, match="missing column 'label'") as err:
        load_dataset(_csv_dataset(tmp_path, "path,kind\nimg/a1.png,a\n"))
    assert "labels.csv" in str(err.value) and "path,label" in err.value.hint


def test_csv_unknown_split(tmp_path):
    text = "path,label,split\nimg/a1.png,a,train\nimg/b1.png,b,holdout\n"
    with pytest.raises(DataError, match=r"labels.csv:3: unknown split 'holdout'") as err:
        load_dataset(_csv_dataset(tmp_path, text))
    assert "train, val or test" in err.value.hint


def test_csv_partial_split_column(tmp_path):
    text = "path,label,split\nimg/a1.png,a,train\nimg/b1.png,b,\n"
    with pytest.raises(DataError, match="labels.csv:3: no split given"):
        load_dataset(_csv_dataset(tmp_path, text))


def test_csv_missing_label_single_label(tmp_path):
    with pytest.raises(DataError, match="labels.csv:2: no label"):
        load_dataset(_csv_dataset(tmp_path, "path,label\nimg/a1.png,\nimg/b1.png,b\n"))


def test_csv_single_class(tmp_path):
    with pytest.raises(DataError, match="single class"):
        load_dataset(_csv_dataset(tmp_path, "path,label\nimg/a1.png,a\nimg/a2.png,a\n"))


# ---------------------------------------------------------------------------------------- hashing


def test_sha256_stable_and_sensitive(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    h1 = load_dataset(root).sha256()
    assert h1 == load_dataset(root).sha256() and len(h1) == 64
    write_image(root / "a" / "new.png")
    h2 = load_dataset(root).sha256()
    assert h2 != h1
    (root / "a" / "new.png").rename(root / "b" / "new.png")  # same file, other label
    assert load_dataset(root).sha256() not in (h1, h2)


def test_digits_fixture_loads(digits_dir):
    ds = load_dataset(digits_dir)
    assert ds.classes == tuple(str(d) for d in range(10))
    assert ds.counts() == {str(d): 30 for d in range(10)}


def test_folder_holding_a_csv_points_to_it(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "labels.csv").write_text("path,label\n")
    with pytest.raises(DataError, match="no class folders") as err:
        load_dataset(tmp_path / "ds")
    assert "labels.csv" in err.value.hint

"""stratified_split, Split.save/load and kfold: stratified, reproducible, disjoint, covering."""

import json

import numpy as np
import pytest

from _data_helpers import make_folder, write_image
from edgerec.data import Split, kfold, load_dataset, stratified_split
from edgerec.errors import DataError


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("split") / "ds", {"a": 50, "b": 30, "c": 20})
    return load_dataset(root, verify="none")


def _share(ds, idx):
    counts = ds.counts(idx)
    return {c: n / len(idx) for c, n in counts.items()}


def test_parts_disjoint_cover_and_sizes(imbalanced):
    s = stratified_split(imbalanced, (0.7, 0.2, 0.1), seed=0)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set.union(*parts) == set(range(len(imbalanced)))
    assert (len(s.train), len(s.val), len(s.test)) == (70, 20, 10)


def test_every_part_keeps_class_shares(imbalanced):
    s = stratified_split(imbalanced, seed=3)
    whole = _share(imbalanced, range(len(imbalanced)))
    for part in (s.train, s.val, s.test):
        for c, frac in _share(imbalanced, part).items():
            assert abs(frac - whole[c]) <= 0.051, (c, frac, whole[c])
    assert s.counts()["test"] == {"a": 5, "b": 3, "c": 2}


def test_seeded_reproducible_and_seed_matters(imbalanced):
    a, b = stratified_split(imbalanced, seed=7), stratified_split(imbalanced, seed=7)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    c = stratified_split(imbalanced, seed=8)
    assert c.test != a.test


def test_save_load_round_trip(imbalanced, tmp_path):
    s = stratified_split(imbalanced, seed=1)
    path = s.save(tmp_path / "run" / "split.json")
    data = json.loads(path.read_text())
    assert data["classes"] == ["a", "b", "c"] and data["seed"] == 1
    assert all(not p.startswith("/") for p in data["train"])  # relative paths
    assert data["dataset_sha256"] == imbalanced.sha256()
    again = Split.load(path)  # reloads the data from data_root
    assert (again.train, again.val, again.test) == (s.train, s.val, s.test)
    with_ds = Split.load(path, imbalanced)
    assert with_ds.paths("test") == s.paths("test")


def test_load_fails_clearly_when_a_file_is_gone(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 10, "b": 10})
    s = stratified_split(load_dataset(root), seed=0)
    s.save(tmp_path / "split.json")
    (root / s.paths("test")[0]).unlink()
    with pytest.raises(DataError, match="test file\\(s\\) are not in") as err:
        Split.load(tmp_path / "split.json")
    assert s.paths("test")[0] in str(err.value)


def test_load_rejects_other_classes_and_bad_files(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 10, "b": 10})
    ds = load_dataset(root)
    stratified_split(ds, seed=0).save(tmp_path / "split.json")
    make_folder(root, {"c": 3})
    with pytest.raises(DataError, match="made for classes"):
        Split.load(tmp_path / "split.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read split file"):
        Split.load(tmp_path / "bad.json", ds)
    with pytest.raises(DataError, match="not found"):
        Split.load(tmp_path / "none.json", ds)


def test_presplit_kept(tmp_path):
    root = tmp_path / "ds"
    make_folder(root, {"a": 6, "b": 6}, split="train")
    make_folder(root, {"a": 2, "b": 2}, split="val")
    make_folder(root, {"a": 1, "b": 1}, split="test")
    ds = load_dataset(root)
    s = stratified_split(ds, seed=0)
    assert all(p.startswith("train/") for p in s.paths("train")) and len(s.train) == 12
    assert all(p.startswith("val/") for p in s.paths("val")) and len(s.val) == 4
    assert all(p.startswith("test/") for p in s.paths("test")) and len(s.test) == 2
    assert s.warnings == []


def test_presplit_without_val_carves_it_from_train(tmp_path):
    root = tmp_path / "ds"
    make_folder(root, {"a": 9, "b": 9}, split="train")
    make_folder(root, {"a": 2, "b": 2}, split="test")
    s = stratified_split(load_dataset(root), (0.7, 0.2, 0.1), seed=0)
    assert len(s.test) == 4 and all(p.startswith("test/") for p in s.paths("test"))
    assert len(s.val) == 4 and all(p.startswith("train/") for p in s.paths("val"))  # round(18 * 0.2 / 0.9)
    assert s.counts()["val"] == {"a": 2, "b": 2} and len(s.train) == 14
    assert "carved from train" in s.warnings[0]


def test_tiny_class_goes_to_train_with_warning(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 20, "b": 20, "rare": 2})
    ds = load_dataset(root)
    s = stratified_split(ds, seed=0)
    rare = ds.classes.index("rare")
    assert all(ds.samples[i].label != rare for i in s.val + s.test)
    assert sum(ds.samples[i].label == rare for i in s.train) == 2
    assert "rare" in s.warnings[0] and "fewer than 3" in s.warnings[0]


def test_too_few_images_for_a_part_is_a_clear_error(tmp_path):
    root = make_folder(tmp_path / "ds", {c: 3 for c in "abcdefghij"})  # 30 images, test part = 3 < 10 classes
    with pytest.raises(DataError, match="test part would hold 3 of 30 images, fewer than the 10 classes") as err:
        stratified_split(load_dataset(root), seed=0)
    assert "ratio" in err.value.hint


@pytest.mark.parametrize("ratios", [(0.7, 0.3), (0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_ratios(imbalanced, ratios):
    with pytest.raises(DataError, match="ratios"):
        stratified_split(imbalanced, ratios)


def test_zero_test_ratio(imbalanced):
    s = stratified_split(imbalanced, (0.8, 0.2, 0.0), seed=0)
    assert s.test == [] and len(s.val) == 20 and len(s.train) == 80


def test_multi_label_split_stratifies_on_first_label(tmp_path):
    rows = ["path,labels"]
    for i in range(40):
        write_image(tmp_path / f"{i}.png")
        first = "cat" if i < 30 else "dog"
        rows.append(f"{i}.png,{first};bird" if i % 2 else f"{i}.png,{first}")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "l.csv", multi_label=True)
    s = stratified_split(ds, (0.5, 0.25, 0.25), seed=0)
    firsts = ds.targets(s.test)
    assert (firsts == ds.classes.index("cat")).sum() == 8 and (firsts == ds.classes.index("dog")).sum() == 2


def test_kfold_disjoint_covering_stratified_test_held_out(imbalanced):
    s = stratified_split(imbalanced, seed=0)
    folds = kfold(imbalanced, s, k=5, seed=0)
    pool = set(s.train + s.val)
    assert len(folds) == 5
    vals = [set(v) for _, v in folds]
    assert set.union(*vals) == pool and sum(map(len, vals)) == len(pool)  # disjoint, covering
    for tr, va in folds:
        assert set(tr) | set(va) == pool and not set(tr) & set(va)
        assert not (set(tr) | set(va)) & set(s.test)
        counts = imbalanced.counts(va)
        assert abs(counts["a"] - 45 / 5) <= 1 and abs(counts["b"] - 27 / 5) <= 1 and abs(counts["c"] - 18 / 5) <= 1
    assert kfold(imbalanced, s, k=5, seed=0) == folds
    assert kfold(imbalanced, s, k=5, seed=1) != folds


def test_kfold_errors(imbalanced):
    with pytest.raises(DataError, match="k >= 2"):
        kfold(imbalanced, None, k=1)
    with pytest.raises(DataError, match="class 'c' has only 2 images") as err:
        kfold(imbalanced, [i for i in range(len(imbalanced)) if imbalanced.samples[i].label != 2][:10]
              + [i for i in range(len(imbalanced)) if imbalanced.samples[i].label == 2][:2], k=3)
    assert "k <= 2" in err.value.hint


def test_digits_split(digits_dir):
    ds = load_dataset(digits_dir)
    s = stratified_split(ds, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (210, 60, 30)
    assert set(s.counts()["test"].values()) == {3}
    assert np.array_equal(np.sort(np.concatenate([s.train, s.val, s.test])), np.arange(300))


def test_load_notes_a_changed_dataset(tmp_path):
    root = make_folder(tmp_path / "ds", {"a": 10, "b": 10})
    stratified_split(load_dataset(root), seed=0).save(tmp_path / "split.json")
    assert Split.load(tmp_path / "split.json").warnings == []
    write_image(root / "a" / "extra.png")
    assert "dataset changed" in Split.load(tmp_path / "split.json").warnings[0]

"""Built-in datasets: real digits as an ImageFolder, generated shapes deterministic and learnable."""

import numpy as np
import pytest

from edgerec.data import load_dataset, read_image, write_digits, write_synth
from edgerec.data.builtin import MAX_SYNTH_CLASSES, synth_class_names
from edgerec.errors import DataError


def test_digits_full_set(tmp_path):
    from sklearn.datasets import load_digits

    out = write_digits(tmp_path / "d", size=16)
    ds = load_dataset(out, verify="none")
    assert ds.classes == tuple(str(i) for i in range(10)) and len(ds) == 1797
    digits = load_digits()
    assert ds.counts() == {str(d): int((digits.target == d).sum()) for d in range(10)}
    img = read_image(out / "0" / "0000.png")
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    # dark ink on white paper, same picture as the 8x8 source
    assert img.max() >= 250 and img.min() <= 40
    small = img[..., 0].reshape(8, 2, 8, 2).mean(axis=(1, 3))
    ink = 255 - digits.images[0] * 255 / 16
    assert np.corrcoef(small.ravel(), ink.ravel())[0, 1] > 0.9


def test_digits_subset_is_seeded(tmp_path):
    a = write_digits(tmp_path / "a", size=8, per_class=5, seed=1)
    b = write_digits(tmp_path / "b", size=8, per_class=5, seed=1)
    c = write_digits(tmp_path / "c", size=8, per_class=5, seed=2)
    names = lambda root: sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))  # noqa: E731
    assert names(a) == names(b) != names(c)
    assert len(names(a)) == 50


def test_refuses_non_empty_folder_without_exist_ok(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty") as err:
        write_digits(tmp_path / "d", size=8, per_class=1)
    assert "--force" in err.value.hint
    write_digits(tmp_path / "d", size=8, per_class=1, exist_ok=True)
    assert (tmp_path / "d" / "keep.txt").read_text() == "mine"


def test_bad_sizes_and_counts(tmp_path):
    with pytest.raises(DataError, match="image size"):
        write_digits(tmp_path / "x", size=4)
    with pytest.raises(DataError, match="2 to"):
        write_synth(tmp_path / "y", classes=1)
    with pytest.raises(DataError, match="2 to"):
        write_synth(tmp_path / "y", classes=MAX_SYNTH_CLASSES + 1)
    with pytest.raises(DataError, match="per_class"):
        write_synth(tmp_path / "y", per_class=0)


def test_synth_deterministic_per_seed(tmp_path):
    a = write_synth(tmp_path / "a", classes=3, per_class=4, size=24, seed=5)
    b = write_synth(tmp_path / "b", classes=3, per_class=4, size=24, seed=5)
    c = write_synth(tmp_path / "c", classes=3, per_class=4, size=24, seed=6)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 12
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert sum((a / f).read_bytes() != (c / f).read_bytes() for f in files) == 12


def test_synth_any_class_count_and_size(tmp_path):
    out = write_synth(tmp_path / "s", classes=70, per_class=1, size=20, seed=0)
    ds = load_dataset(out)
    assert len(ds.classes) == 70 and len(set(synth_class_names(70))) == 70
    assert any(c.endswith("_outline") for c in ds.classes)
    assert read_image(ds.samples[0].path).shape == (20, 20, 3)


def test_synth_varies_within_a_class(synth_dir):
    ds = load_dataset(synth_dir)
    imgs = np.stack([read_image(s.path) for s in ds.samples if s.label == 0]).astype(np.float32)
    # no two images alike, and the background differs (corners) as well as the shape (position, scale, angle)
    assert len({im.tobytes() for im in imgs}) == len(imgs)
    assert imgs[:, 0, 0].std(axis=0).mean() > 10
    assert imgs.std(axis=0).mean() > 15


def test_synth_is_learnable(tmp_path):
    """A linear model on raw pixels learns it well above chance: labels follow the picture."""
    from sklearn.linear_model import LogisticRegression

    out = write_synth(tmp_path / "s", classes=4, per_class=40, size=16, seed=0)
    ds = load_dataset(out, verify="none")
    x = np.stack([read_image(s.path).ravel() for s in ds.samples]).astype(np.float32) / 255
    y = ds.targets()
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    clf = LogisticRegression(max_iter=300).fit(x[:120], y[:120])
    acc = (clf.predict(x[120:]) == y[120:]).mean()
    assert acc > 0.5  # chance is 0.25

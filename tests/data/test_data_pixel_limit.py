"""One pixel limit for `data check` and the runtime's image source (issue #12, case 5)."""

from _data_helpers import make_folder, write_image

from edgerec import limits
from edgerec.data.check import check_dataset
from edgerec.runtime import open_source


def test_case05_data_check_and_the_runtime_refuse_the_same_image(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", {"cat": 2, "dog": 2}, size=(40, 40))
    big = write_image(data / "cat" / "big.png", size=(300, 200))
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 50_000)
    rep = check_dataset(data)
    (problem,) = [p for p in rep.problems if p["path"] == "cat/big.png"]
    assert "300x200" in problem["reason"] and "limit" in problem["reason"] and rep.counts["cat"] == 2
    with open_source(str(big.parent)) as src:
        names = sorted(f.name for f in src.frames())
    assert len(names) == 2 and str(big) not in names and src.stats.corrupt == 1

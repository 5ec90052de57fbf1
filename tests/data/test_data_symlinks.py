"""`data check` and dataset scans with symbolic links (issue #12, case 3): a link out of the dataset or a link
loop is listed, not walked; links inside the dataset still work."""

from _data_helpers import make_folder, write_image

from edgerec.data.check import check_dataset
from edgerec.data.dataset import load_dataset


def test_case03_links_out_of_the_dataset_and_loops_are_not_walked(tmp_path):
    data = make_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    outside = tmp_path / "elsewhere"
    for i in range(40):
        write_image(outside / "deep" / f"{i}.png")
    (data / "cat" / "etc").symlink_to(outside)  # like a link to /etc: not part of the dataset
    (data / "dog" / "loop").symlink_to(data / "dog")  # a loop back to the class folder
    (data / "dog" / "up").symlink_to(data)  # a loop through the root
    rep = check_dataset(data)
    assert rep.counts == {"cat": 3, "dog": 3} and rep.usable
    kinds = {p["path"]: p["kind"] for p in rep.problems}
    assert kinds == {"cat/etc": "link_not_followed", "dog/loop": "link_not_followed", "dog/up": "link_not_followed"}
    assert "outside the dataset" in next(p["reason"] for p in rep.problems if p["path"] == "cat/etc")
    ds = load_dataset(data, verify="none")
    assert len(ds.samples) == 6 and len(ds.skipped) == 3


def test_links_inside_the_dataset_and_linked_class_folders_still_work(tmp_path):
    data = make_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    pool = make_folder(tmp_path / "pool", {"birds": 4})
    (data / "bird").symlink_to(pool / "birds")  # a class folder that lives elsewhere: followed, as before
    write_image(data / ".pool" / "x.png")
    (data / "cat" / "more").symlink_to(data / ".pool")  # inside the dataset, not a class: followed
    (data / "dog" / "cats_too").symlink_to(data / "cat")  # another class's images: not counted twice
    rep = check_dataset(data)
    assert rep.counts == {"bird": 4, "cat": 3, "dog": 2}
    assert [p["path"] for p in rep.problems if p["kind"] == "link_not_followed"] == ["dog/cats_too"]

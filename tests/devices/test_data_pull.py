"""`edgerec data pull`: new, complete, verified frames from boards; marked pulled on the board; resumable;
duplicates across boards kept once; nothing ever overwritten."""

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from edgerec.devices.frames import INDEX_NAME, PULLED_NAME, board_folder, pull_frames
from edgerec.devices.ssh import LocalConnection
from edgerec.errors import ConfigError, DeployError


def _group(folder: Path, stem: str, payload: bytes, *, sidecar: bool = True, roi: bool = False, age: float = 60.0):
    """A frame group as `run --collect` writes it: <stem>.jpg [+ .roi.jpg] + <stem>.json, aged by ``age`` s."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{stem}.jpg"]
    files[0].write_bytes(payload)
    if roi:
        files.append(folder / f"{stem}.roi.jpg")
        files[-1].write_bytes(payload[::-1])
    if sidecar:
        files.append(folder / f"{stem}.json")
        files[-1].write_text(json.dumps({"file": f"{stem}.jpg", "predicted": "one", "score": 0.4}))
    t = time.time() - age
    for f in files:
        os.utime(f, (t, t))
    return files


def _pulled(remote: Path) -> list[str]:
    p = remote / PULLED_NAME
    return p.read_text().split() if p.exists() else []


def test_pull_copies_complete_groups_verifies_marks_and_resumes(tmp_path):
    remote = tmp_path / "board" / "collect"
    _group(remote, "20260101-000000-000_pi_000001", b"frame one")
    _group(remote, "20260101-000001-000_pi_000002", b"frame two", roi=True)
    _group(remote, "20260101-000002-000_pi_000003", b"roi but no sidecar yet", roi=True, sidecar=False)
    _group(remote, "20260101-000003-000_pi_000004", b"just written", age=0.0)
    (remote / ".hidden").write_text("never copied")
    dest = tmp_path / "field"

    r = pull_frames(LocalConnection(), dest, board="kitchen", remote=str(remote))
    out = dest / "kitchen"
    assert r.ok and r.folder == str(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "20260101-000000-000_pi_000001.jpg", "20260101-000000-000_pi_000001.json",
        "20260101-000001-000_pi_000002.jpg", "20260101-000001-000_pi_000002.json", "20260101-000001-000_pi_000002.roi.jpg"]
    assert (out / "20260101-000001-000_pi_000002.jpg").read_bytes() == b"frame two"
    assert r.copied == 5 and r.pending == 4 and r.already == 0 and r.marked == 5
    assert r.listed == 9  # the hidden file is not even listed
    assert sorted(_pulled(remote)) == sorted(p.name for p in out.iterdir())
    index = [json.loads(ln) for ln in (dest / INDEX_NAME).read_text().splitlines()]
    assert {i["sha256"] for i in index} == {hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert all(i["board"] == "kitchen" for i in index)

    # the pending ones complete; the pulled ones are never fetched again
    (remote / "20260101-000002-000_pi_000003.json").write_text("{}")
    old = time.time() - 60
    for f in remote.glob("*"):
        os.utime(f, (old, old))
    r2 = pull_frames(LocalConnection(), dest, board="kitchen", remote=str(remote))
    assert r2.copied == 5 and r2.already == 5 and r2.pending == 0
    r3 = pull_frames(LocalConnection(), dest, board="kitchen", remote=str(remote))
    assert r3.copied == 0 and r3.already == 10 and r3.marked == 0


def test_an_interrupted_pull_resumes_without_copying_again(tmp_path, monkeypatch):
    remote = tmp_path / "collect"
    for i in range(4):
        _group(remote, f"20260101-00000{i}-000_pi_00000{i}", f"frame {i}".encode(), sidecar=False)
    conn = LocalConnection()
    real_get, calls = conn.get, []

    def flaky_get(src, local):
        calls.append(src)
        if len(calls) == 3:
            raise DeployError("localhost: connection lost while downloading")
        real_get(src, local)

    monkeypatch.setattr(conn, "get", flaky_get)
    with pytest.raises(DeployError, match="connection lost"):
        pull_frames(conn, tmp_path / "home", board="b", remote=str(remote))
    assert len(_pulled(remote)) == 2  # what was verified before the cut is marked (in the finally)
    assert not list((tmp_path / "home" / "b").glob(".*part-*"))  # no partial file left behind

    monkeypatch.setattr(conn, "get", real_get)
    r = pull_frames(conn, tmp_path / "home", board="b", remote=str(remote))
    assert r.copied == 2 and r.already == 2 and len(_pulled(remote)) == 4


def test_a_file_that_changes_while_copying_is_left_for_next_time(tmp_path, monkeypatch):
    remote = tmp_path / "collect"
    _group(remote, "20260101-000000-000_pi_000001", b"original", sidecar=False)
    conn = LocalConnection()
    monkeypatch.setattr(conn, "get", lambda src, local: Path(local).write_bytes(b"grew meanwhile"))
    r = pull_frames(conn, tmp_path / "home", board="b", remote=str(remote))
    assert r.ok and r.changed == 1 and r.copied == 0 and _pulled(remote) == []
    assert not any((tmp_path / "home" / "b").iterdir())


def test_name_conflicts_are_never_overwritten_and_duplicates_are_kept_once(tmp_path):
    a, b = tmp_path / "a" / "collect", tmp_path / "b" / "collect"
    _group(a, "20260101-000000-000_raspberrypi_000001", b"seen by board a", sidecar=False)
    _group(b, "20260101-000000-000_raspberrypi_000001", b"seen by board b", sidecar=False)  # same name, other bytes
    _group(b, "20260101-000009-000_raspberrypi_000002", b"seen by board a", sidecar=False)  # same bytes, other name
    dest = tmp_path / "field"
    ra = pull_frames(LocalConnection(), dest, board="a", remote=str(a), merge=True)
    rb = pull_frames(LocalConnection(), dest, board="b", remote=str(b), merge=True)
    assert ra.copied == 1
    assert rb.conflicts == ["20260101-000000-000_raspberrypi_000001.jpg"] and rb.duplicates == 1 and rb.copied == 0
    assert (dest / "20260101-000000-000_raspberrypi_000001.jpg").read_bytes() == b"seen by board a"
    # the conflicting frame stays on board b, not marked pulled (nothing lost); the duplicate is marked
    assert _pulled(b) == ["20260101-000009-000_raspberrypi_000002.jpg"]
    assert "1 name conflicts" in rb.line() and "1 duplicates" in rb.line()


def test_class_folders_keep_their_layout(tmp_path):
    remote = tmp_path / "data"
    _group(remote / "apple", "20260101-000000-000_pi_000001", b"apple", sidecar=False)
    _group(remote / "pear", "20260101-000000-000_pi_000001", b"pear", sidecar=False)
    r = pull_frames(LocalConnection(), tmp_path / "home", board="pi@10.0.0.7:2222", remote=str(remote))
    out = tmp_path / "home" / "pi_10.0.0.7_2222"
    assert r.copied == 2 and (out / "apple" / "20260101-000000-000_pi_000001.jpg").read_bytes() == b"apple"
    assert sorted(_pulled(remote)) == ["apple/20260101-000000-000_pi_000001.jpg", "pear/20260101-000000-000_pi_000001.jpg"]


def test_bad_input_is_refused_with_a_hint(tmp_path):
    with pytest.raises(DeployError, match="does not exist") as e:
        pull_frames(LocalConnection(), tmp_path / "home", remote=str(tmp_path / "nothing here"))
    assert "--collect" in e.value.hint
    with pytest.raises(ConfigError, match="climbs"):
        pull_frames(LocalConnection(), tmp_path / "home", remote="/tmp/../etc")
    assert board_folder("../..") == "board" and board_folder("pi@kitchen.local") == "pi_kitchen.local"

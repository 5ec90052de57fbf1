"""The whole loop on the loopback SSH board, through the command line, with a video as the camera:

train v1 -> export -> device setup --collect -> deploy -> the board collects the frames it doubts -> data pull ->
data review (a person's labels) -> merge -> train v2 warm-started from v1 -> export -> gate -> deploy
--require-gate -> the board runs v2.
"""

import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgerec.cli import main

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

_HOLD = 3  # video frames per digit


def _digits(root: Path) -> tuple[Path, Path, list[tuple[np.ndarray, str]]]:
    """(training folder, frozen test folder, images for the video): 40 digits a class, every 5th held out."""
    import cv2

    from edgerec.data import write_digits

    every = write_digits(root / "all", size=32, per_class=40, seed=3)
    train, test, shown = root / "train", root / "test", []
    for cls in sorted(p.name for p in every.iterdir()):
        for i, f in enumerate(sorted((every / cls).iterdir())):
            dest = (test if i % 5 == 0 else train) / cls
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / f.name)
            if i % 5 == 1 and len([s for s in shown if s[1] == cls]) < 4:
                shown.append((cv2.imread(str(f)), cls))
    return train, test, shown


def _video(path: Path, shown) -> list[str]:
    """A 640x480 clip: each digit scaled to 480 px high in the middle of mid-gray bands; returns the label per frame."""
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    labels = []
    for img, cls in shown:
        frame = np.full((480, 640, 3), 128, np.uint8)
        frame[:, 80:560] = cv2.resize(img, (480, 480), interpolation=cv2.INTER_LINEAR)
        for _ in range(_HOLD):
            vw.write(frame)
            labels.append(cls)
    vw.release()
    return labels


def _ssh(server, root):
    return ["--identity", str(server.client_key), "--known-hosts", str(server.known_hosts), "--root", str(root)]


def _train(data, out, *extra):
    code = main(["train", str(data), "--out", str(out), "--model", "mobilenet_v3_small", "--weights", "none",
                 "--img-size", "32", "--threads", "2", "--no-plots", "--quiet", "--allow-chance", *extra])
    assert code == 0


def _export(run, out):
    assert main(["export", str(run), "--out", str(out), "--formats", "onnx", "--precision", "fp32",
                 "--no-archive", "--max-eval", "60"]) == 0


def test_capture_pull_review_train_gate_deploy(sshd_server, tmp_path, capsys):
    from edgerec.devices import board

    train_dir, test_dir, shown = _digits(tmp_path / "data")
    truth = _video(tmp_path / "camera.avi", shown)
    root = tmp_path / "pi home"
    ssh = _ssh(sshd_server, root)
    venv = str(Path(sys.executable).parents[1])

    # v1: a model barely trained, so the board doubts most of what it sees
    _train(train_dir, tmp_path / "v1", "--epochs", "1", "--max-steps", "2")
    _export(tmp_path / "v1", tmp_path / "b1")
    try:
        assert main(["device", "setup", sshd_server.target, "--venv", venv, "--no-os-packages", "--service",
                     "supervised", "--camera", str(tmp_path / "camera.avi"), "--collect", "--run-args",
                     "--loop --backend onnxruntime --threads 1 --collect-below 0.95 --collect-random 0.2 "
                     "--collect-per-minute 600", *ssh]) == 0
        assert main(["deploy", str(tmp_path / "b1"), sshd_server.target, "--health-timeout", "60", *ssh]) == 0
        capsys.readouterr()
        collect = root / "collect"
        deadline = time.monotonic() + 60
        while len(list(collect.glob("*.json"))) < 30 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(list(collect.glob("*.json"))) >= 30, "the board collected too few frames"
        # the board can write all of these within --settle of the pull, which then (rightly) takes none of them
        time.sleep(1.0)

        # pull (while the board keeps collecting), twice: the second brings only what is new
        field = tmp_path / "field"
        assert main(["data", "pull", sshd_server.target, str(field), "--name", "shop-1", "--settle", "0.5", *ssh]) == 0
        first = capsys.readouterr().out
        assert "shop-1:" in first and "new files" in first
        pulled = set((collect / ".pulled").read_text().split())
        local = field / "shop-1"
        assert {p.name for p in local.iterdir()} <= pulled | {p.name for p in local.iterdir() if p.name.startswith(".")}
        n_first = len(list(local.glob("*.json")))
        assert main(["data", "pull", sshd_server.target, str(field), "--name", "shop-1", "--settle", "0.5", *ssh]) == 0
        capsys.readouterr()
        assert len(list(local.glob("*.json"))) >= n_first
        board.stop(root)  # the board is another machine; here it would share the two cores with training

        # review: a person fills in the true label of each frame (here: from the clip's script)
        assert main(["data", "review", str(field)]) == 0
        capsys.readouterr()
        rows = list(csv.DictReader(open(field / "review.csv")))
        assert rows and all(r["board"] == "shop-1" for r in rows)
        for r in rows:
            side = json.loads((field / r["path"]).with_suffix(".json").read_text())
            r["label"] = truth[side["frame"] % len(truth)]
        with open(field / "review.csv", "w", newline="") as f:
            w = csv.DictWriter(f, rows[0].keys())
            w.writeheader()
            w.writerows(rows)
        assert main(["data", "review", str(field)]) == 0
        assert "field accuracy shop-1" in capsys.readouterr().out
        assert main(["data", "review", str(field), "--into", str(train_dir)]) == 0
        assert f"copied {len(rows)} frames" in capsys.readouterr().out

        # v2: warm-started from v1 on the training folder plus the field frames
        _train(train_dir, tmp_path / "v2", "--resume", str(tmp_path / "v1"), "--epochs", "6")
        _export(tmp_path / "v2", tmp_path / "b2")

        # the gate, then a deploy that requires it
        gate = tmp_path / "gate.json"
        code = main(["gate", str(tmp_path / "b2"), "--current", str(tmp_path / "b1"), "--test", str(test_dir),
                     "--field", str(field), "--out", str(gate), "--threads", "1"])
        out = capsys.readouterr().out
        assert code == 0, out
        res = json.loads(gate.read_text())
        assert res["sets"]["field"]["boards"]["shop-1"]["n"] == len(rows)
        assert res["sets"]["combined"]["candidate"] > res["sets"]["combined"]["current"]
        assert main(["deploy", str(tmp_path / "b1"), sshd_server.target, "--require-gate", str(gate), *ssh]) == 2
        capsys.readouterr()
        assert main(["deploy", str(tmp_path / "b2"), sshd_server.target, "--require-gate", str(gate),
                     "--health-timeout", "60", *ssh]) == 0
        capsys.readouterr()
        assert main(["status", sshd_server.target, "--json", *ssh]) == 0
        st = json.loads(capsys.readouterr().out)
        m2 = json.loads((tmp_path / "b2" / "edgerec.json").read_text())
        assert st["models"][m2["name"]]["current"] == m2["version"]
    finally:
        if (root / "board.json").exists():
            board.stop(root)

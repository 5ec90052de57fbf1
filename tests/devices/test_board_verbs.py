"""Every board-side verb on a runtime-only install: what `edgerec device setup` puts on a board.

A clean virtual environment holding only the ``litert`` extra (numpy, OpenCV, ai-edge-litert, PyYAML,
jsonschema) and edgerec without dependencies, so rich, Pillow, torch and tqdm are absent. Each verb a board
user types must work there, or refuse with one clear line: a traceback fails the test.
"""

import json
import os
import shutil
import subprocess

import pytest
from _fixtures.runtime import add_check_images, make_clean_env, record_check_outputs


@pytest.fixture(scope="module")
def board_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("board-venv")
    py = make_clean_env(root / "venv", "litert")
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('torch', 'rich', 'PIL', "
                            "'tensorflow', 'onnxruntime', 'openvino') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"
    return py


def _edgerec(py, *args, cwd, ok=True):
    env = {"PATH": f"{py.parent}:/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(py.parent / "edgerec"), *map(str, args)], capture_output=True, text=True, timeout=300,
                       env=env, cwd=cwd)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-3000:]
    if ok:
        assert r.returncode == 0, out[-3000:]
    return r


@pytest.mark.slow
def test_board_verbs_on_a_runtime_only_install(board_env, rt_tflite_bundle, rt_video, tmp_path):
    bundle = add_check_images(shutil.copytree(rt_tflite_bundle, tmp_path / "colours"))
    record_check_outputs(bundle)  # what export records: the board's self-test compares against it
    assert "run" in _edgerec(board_env, "--help", cwd=tmp_path).stdout
    info = _edgerec(board_env, "bundle", "info", bundle, cwd=tmp_path).stdout
    assert "tflite" in info and "int8" in info  # plain text without rich: every artifact still listed
    _edgerec(board_env, "bundle", "verify", bundle, cwd=tmp_path)
    checked = _edgerec(board_env, "bundle", "verify", "--run", bundle, cwd=tmp_path).stdout
    assert "tflite-int8        3 check images  ok  max |output - export's|" in checked and "FAILED" not in checked
    res = _edgerec(board_env, "run", bundle, "--source", rt_video, "--max-frames", "5", "--jsonl", "-", cwd=tmp_path)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 5 and all(r["label"] in ("red", "green", "blue") for r in rows)
    bench = _edgerec(board_env, "bench", bundle, "--runs", "5", "--warmup-runs", "1", "--json",
                     "--store", tmp_path / "store.jsonl", cwd=tmp_path).stdout
    assert "litert" in bench and (tmp_path / "store.jsonl").exists()
    doctor = _edgerec(board_env, "device", "doctor", "--json", cwd=tmp_path, ok=False)
    assert doctor.returncode in (0, 1)
    report = json.loads(doctor.stdout)
    assert report  # absent tools are reported as absent, not raised
    board = subprocess.run([str(board_env), "-m", "edgerec.devices.board", str(tmp_path / "board"), "info"],
                           capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert board.returncode == 0 and "Traceback" not in board.stderr, board.stderr[-3000:]
    assert json.loads(board.stdout)["versions"]


@pytest.mark.slow
def test_training_verbs_refuse_clearly_on_a_runtime_only_install(board_env, tmp_path):
    (tmp_path / "run").mkdir()
    for verb in (["train", str(tmp_path), "--out", str(tmp_path / "r")], ["export", str(tmp_path / "run")],
                 ["demo", "--out", str(tmp_path / "d")], ["imagenet", str(tmp_path / "i")]):
        r = _edgerec(board_env, *verb, cwd=tmp_path, ok=False)
        assert r.returncode != 0
        assert "edgerec[" in r.stderr, r.stderr[-2000:]  # names the extra to install

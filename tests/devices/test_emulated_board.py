"""End to end on the emulated Raspberry Pi 4 (arm64 Debian Bookworm under qemu-user), with the real CLI and the real
aarch64 wheels: device setup from a wheel of this checkout -> deploy (health check = the real `edgerec run`'s first
prediction on a video) -> status -> deploy v2 -> rollback; and on the board: device doctor, bundle verify --run
(same top-1 as at export), the fingerprint.

Minutes, not seconds: marked ``board`` and left out of the main suite (``pytest -m board`` runs them). Timings are
printed for the record; nothing here asserts on them (benchmarks/emulated_board.py measures, labelled emulated).
"""

import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest

from edgerec.bundle import load_manifest, write_manifest
from edgerec.cli import main

from _fixtures.emulated_board import board_ssh
from _fixtures.export import export_run, make_digits_run

pytestmark = pytest.mark.board

BOARD_ROOT = "/root/.edgerec"  # device setup's default ~/.edgerec, for root
EDGEREC = f"{BOARD_ROOT}/venv/bin/edgerec"
TIMINGS: dict[str, float] = {}


def _ssh(board):
    return ["--identity", board.client_key, "--known-hosts", board.known_hosts]


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    """A 32 px digits MobileNetV3-small exported to TFLite fp32 and int8, with check images (what a Pi runs)."""
    root = tmp_path_factory.mktemp("board-export")
    run = make_digits_run(root, per_class=30, steps=25)
    return export_run(run, root / "bundle", formats=("tflite",), precisions=("fp32", "int8"), max_int8_drop=10.0,
                      calib=32, max_eval=100).dir


@pytest.fixture(scope="module")
def set_up(emulated_board, board_wheel, rt_video):
    """`edgerec device setup` of the emulated board, OS packages included: (exit code, printed report)."""
    shutil.copy(rt_video, Path(emulated_board.root) / "root" / "clip.avi")
    import contextlib
    import io

    out = io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out):
        rc = main(["device", "setup", emulated_board.target, "--package", str(board_wheel), "--camera", "/root/clip.avi",
                   "--run-args", "--loop --threads 2", *_ssh(emulated_board)])
    TIMINGS["setup_s"] = time.monotonic() - t0
    print(out.getvalue())
    return rc, out.getvalue()


def test_setup_detects_the_pi_and_warns_about_what_apt_lacks(set_up, emulated_board):
    rc, out = set_up
    assert rc == 0, out
    assert "profile: rpi4" in out and "Raspberry Pi 4 Model B Rev 1.1" in out  # read from the device tree
    assert "python3-picamera2" in out and "warn" in out and "picam://" in out  # Raspberry Pi's own repository
    assert "supervised" in out  # no systemd in a chroot
    cfg = board_ssh(emulated_board, f"cat {BOARD_ROOT}/venv/pyvenv.cfg").stdout
    assert "include-system-site-packages = true" in cfg  # where apt's picamera2 would be seen
    arch = board_ssh(emulated_board, f"{BOARD_ROOT}/venv/bin/python -c 'import platform; print(platform.machine())'")
    assert arch.stdout.strip() == "aarch64"


def test_deploy_status_rollback(set_up, emulated_board, digits_bundle, tmp_path, capsys):
    assert set_up[0] == 0, set_up[1]
    m = load_manifest(digits_bundle)
    name, v1 = m.name, m.version
    v2 = Path(shutil.copytree(digits_bundle, tmp_path / "v2"))
    write_manifest(dataclasses.replace(load_manifest(v2), version="2"), v2)
    ssh = _ssh(emulated_board)
    target = emulated_board.target
    capsys.readouterr()

    t0 = time.monotonic()
    assert main(["deploy", str(digits_bundle), target, "--health-timeout", "600", *ssh]) == 0
    TIMINGS["deploy_to_healthy_s"] = time.monotonic() - t0
    out = capsys.readouterr().out
    assert f"{name} {v1} is current" in out and "healthy: first prediction" in out, out
    preds = board_ssh(emulated_board, f"cat {BOARD_ROOT}/run/predictions.jsonl").stdout.splitlines()
    rows = [json.loads(ln) for ln in preds if ln.strip()]
    assert rows and all("label" in r for r in rows), preds[:3]

    assert main(["deploy", str(v2), target, "--health-timeout", "600", *ssh]) == 0
    capsys.readouterr()
    assert main(["status", target, "--json", *ssh]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["models"][name]["current"] == "2" and st["service"]["running_version"] == "2"
    assert st["versions"].get("ai-edge-litert") and st["last_health_check"]["health"]["healthy"]

    t0 = time.monotonic()
    assert main(["rollback", target, "--health-timeout", "600", *ssh]) == 0
    TIMINGS["rollback_s"] = time.monotonic() - t0
    assert f"{name} {v1} is current again" in capsys.readouterr().out
    link = board_ssh(emulated_board, f"readlink {BOARD_ROOT}/models/{name}/current").stdout.strip()
    assert link == v1
    print("emulated (qemu-user) timings, not board figures:", {k: round(v, 1) for k, v in TIMINGS.items()})


def test_verify_run_on_the_board_gives_the_export_top1(set_up, emulated_board, digits_bundle):
    assert set_up[0] == 0, set_up[1]
    name = load_manifest(digits_bundle).name
    dest = f"/root/verify-{name}"
    shutil.copytree(digits_bundle, Path(emulated_board.root) / dest.lstrip("/"))
    r = board_ssh(emulated_board, f"{EDGEREC} bundle verify --run {dest}", check=False)
    out = r.stdout + r.stderr
    assert "Traceback" not in out and r.returncode == 0, out[-3000:]
    for key in ("tflite-fp32", "tflite-int8"):
        line = next((ln for ln in out.splitlines() if key in ln), "")
        assert "same answer as at export 100%" in line, out


def test_doctor_on_the_board_reports_absent_tools_as_absent(set_up, emulated_board):
    assert set_up[0] == 0, set_up[1]
    r = board_ssh(emulated_board, f"{EDGEREC} device doctor --json", check=False)
    assert "Traceback" not in r.stdout + r.stderr and r.returncode in (0, 1), r.stdout + r.stderr
    rep = json.loads(r.stdout)
    checks = {c["name"]: c for c in rep["checks"]}
    assert "emulated" in checks["throttling"]["detail"]  # the vcgencmd stand-in, not a made-up "ok"


def test_fingerprint_on_the_board_is_a_pi4_on_aarch64(set_up, emulated_board):
    assert set_up[0] == 0, set_up[1]
    code = "import json; from edgerec.bench.fingerprint import hardware; print(json.dumps(hardware()))"
    hw = json.loads(board_ssh(emulated_board, f"{BOARD_ROOT}/venv/bin/python -c {json.dumps(code)}").stdout)
    assert hw == {"board_model": "Raspberry Pi 4 Model B Rev 1.1", "cpu_model": "BCM2835", "cores": 4,
                  "machine": "aarch64"}


def test_a_stopped_board_leaves_no_process_and_no_mount(emulated_pi, emulated_board, tmp_path):
    """A second board (the cached root is already built): start, run something that outlives its session, stop."""
    import os

    t0 = time.monotonic()
    board = emulated_pi.start(tmp_path / "second", nice=19)
    TIMINGS["start_s"] = time.monotonic() - t0
    try:
        assert board_ssh(board, "hostname").stdout.strip() == "emulated-pi4"
        board_ssh(board, "nohup sleep 600 >/dev/null 2>&1 &")
        root = Path(board.root)
        assert [p for p in os.listdir("/proc") if p.isdigit() and emulated_pi._inside(p, root)]
    finally:
        emulated_pi.stop(tmp_path / "second")
    assert emulated_pi.mounts_under(tmp_path / "second") == []
    assert not [p for p in os.listdir("/proc") if p.isdigit() and emulated_pi._inside(p, root)]
    assert not (tmp_path / "second").exists()

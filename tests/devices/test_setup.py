"""Board setup over SSH (idempotent), the systemd unit checked by systemd-analyze, and the supervisor."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgerec.devices import board
from edgerec.devices.setup import render_unit, setup_board, systemd_quote

from _fixtures.ssh import FAKE_RUNTIME, make_bundle

VENV = str(Path(sys.executable).parents[1])


@pytest.mark.parametrize("root", ["/home/pi/.edgerec", "/srv/edge rec/it's \"here\" 100%"])
def test_rendered_unit_passes_systemd_analyze_verify(tmp_path, root):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = render_unit(python=sys.executable, root=root, user="root", profile="rpi5", threads=4)
    assert "ExecStart=" in unit and "${" not in unit
    path = tmp_path / "edgerec.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "edgerec.service" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_systemd_unit_broken_is_caught_by_verify(tmp_path):
    """The check above is not vacuous: verify fails on a unit whose ExecStart does not exist."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = render_unit(python="/nonexistent/python", root="/x", user="root")
    path = tmp_path / "edgerec.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode != 0 or "nonexistent" in r.stderr


def test_systemd_quote():
    assert systemd_quote("/usr/bin/python3") == "/usr/bin/python3"
    assert systemd_quote("a b") == '"a b"'
    assert systemd_quote('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert systemd_quote("100%") == "100%%" and systemd_quote("$HOME") == "$$HOME"


@pytest.mark.ssh
def test_setup_is_idempotent_and_writes_board_config(sshd_server, tmp_path):
    root = tmp_path / "board root"
    kw = dict(root=str(root), venv=VENV, os_packages=False, service="auto", camera_uri="/dev/video0")
    with sshd_server.connect() as conn:
        first = setup_board(conn, **kw)
        second = setup_board(conn, **kw)
    cfg = json.loads((root / "board.json").read_text())
    assert cfg["python"] == VENV + "/bin/python" and cfg["camera_uri"] == "/dev/video0"
    assert cfg["service"] == "supervised"  # no systemd runs here
    assert cfg["profile"] == "x86-64"  # detected from the machine
    s1 = {s.name: s.status for s in first.steps}
    s2 = {s.name: s.status for s in second.steps}
    assert s1["board.json"] == "done" and s2["board.json"] == "already" and s2["service"] == "already"
    assert "board.json" in second.table()


@pytest.mark.ssh
def test_setup_dry_run_for_rpi5_plans_picamera2_and_system_site_packages(sshd_server, tmp_path, monkeypatch):
    import edgerec.devices.setup as setup_mod

    real = setup_mod._facts

    def as_pi(conn):  # the loopback board pretends to be a Pi 5; nothing is installed in a dry run
        f = real(conn)
        f.update(machine="aarch64", model="Raspberry Pi 5 Model B Rev 1.0", uid="1000", groups="pi", sudo="yes", user="pi")
        return f

    monkeypatch.setattr(setup_mod, "_facts", as_pi)
    root = tmp_path / "pi"
    with sshd_server.connect() as conn:
        rep = setup_board(conn, root=str(root), dry_run=True)
    steps = {s.name: s for s in rep.steps}
    assert rep.profile == "rpi5"
    assert "python3-picamera2" in steps["os packages"].detail and steps["os packages"].status == "planned"
    assert "--system-site-packages" in steps["venv"].detail and "edgerec[litert]" in steps["venv"].detail
    assert steps["video group"].status == "planned"
    assert not root.exists()  # a dry run changes nothing


def test_supervisor_restarts_a_crashed_runtime_and_stops_cleanly(tmp_path):
    root = tmp_path / "board"
    (root / "models" / "m").mkdir(parents=True)
    make_bundle(root / "models" / "m" / "1", name="m", version="1")
    os.symlink("1", root / "models" / "m" / "current")
    os.symlink("models/m", root / "active")
    cfg = {"python": sys.executable, "service": "supervised", "camera_uri": "x",
           "command": ["{python}", str(FAKE_RUNTIME), "{bundle}", "{source}", "{jsonl}"]}
    (root / "board.json").write_text(json.dumps(cfg))
    try:
        assert board.start(root) == "supervised"
        health = board.wait_healthy(root, "1", 20)
        assert health["healthy"], health
        pid = health["state"]["pid"]
        os.kill(pid, 9)  # the runtime crashes
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = board.service_state(root)
            if st["active"] and st["pid"] != pid:
                break
            time.sleep(0.1)
        assert st["active"] and st["pid"] != pid
        assert "restarting" in (root / "run" / "service.log").read_text()
        assert board.start(root) == "supervised (already running)"
    finally:
        board.stop(root)
    assert not board.service_state(root)["active"]
    assert not (root / "run" / "supervisor.pid").exists()


def test_health_reports_missing_predictions_with_log_tail(tmp_path):
    root = tmp_path / "board"
    (root / "models" / "m").mkdir(parents=True)
    make_bundle(root / "models" / "m" / "1", name="m", version="1", behaviour="crash")
    os.symlink("1", root / "models" / "m" / "current")
    os.symlink("models/m", root / "active")
    cfg = {"python": sys.executable, "service": "supervised", "camera_uri": "x",
           "command": ["{python}", str(FAKE_RUNTIME), "{bundle}", "{source}", "{jsonl}"]}
    (root / "board.json").write_text(json.dumps(cfg))
    try:
        board.start(root)
        h = board.wait_healthy(root, "1", 2)
    finally:
        board.stop(root)
    assert not h["healthy"] and "model failed to load" in h["log_tail"]


def test_install_script_sets_up_this_machine(tmp_path, repo_root):
    """runtime/install.sh with a venv already in place: no pip, then `device setup --local`; twice = idempotent."""
    root = tmp_path / "edge rec"
    root.mkdir()
    os.symlink(Path(sys.executable).parents[1], root / "venv")
    cmd = ["sh", str(repo_root / "runtime" / "install.sh"), "--root", str(root), "--no-os-packages", "--camera", "/dev/video0"]
    for expect in ("done", "already"):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("board.json"))
        assert expect in line
    cfg = json.loads((root / "board.json").read_text())
    assert cfg["python"] == str(root / "venv" / "bin" / "python") and cfg["camera_uri"] == "/dev/video0"


def _tiny_wheel(folder: Path) -> Path:
    """A wheel named edgerec 0.0.1 holding only edgerec/__init__.py: enough for pip and `import edgerec`."""
    import base64
    import hashlib
    import zipfile

    files = {
        "edgerec/__init__.py": b"__version__ = '0.0.1'\n",
        "edgerec-0.0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: edgerec\nVersion: 0.0.1\n",
        "edgerec-0.0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("edgerec-0.0.1.dist-info/RECORD,,")
    path = folder / "edgerec-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("edgerec-0.0.1.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.mark.ssh
@pytest.mark.slow
def test_setup_creates_venv_and_installs_a_local_wheel(sshd_server, tmp_path):
    wheel = _tiny_wheel(tmp_path)
    root = tmp_path / "fresh board"
    with sshd_server.connect() as conn:
        rep = setup_board(conn, root=str(root), package=str(wheel), os_packages=False, service="supervised")
    steps = {s.name: s for s in rep.steps}
    assert steps["venv"].status == "done" and wheel.name in steps["venv"].detail
    py = root / "venv" / "bin" / "python"
    r = subprocess.run([str(py), "-c", "import edgerec; print(edgerec.__version__)"], capture_output=True, text=True,
                       cwd=tmp_path)  # not the checkout, whose edgerec/ would shadow the installed one
    assert r.stdout.strip() == "0.0.1"
    assert json.loads((root / "board.json").read_text())["python"] == str(py)


def test_setup_refuses_32_bit_arm_with_the_reason(sshd_server, tmp_path, monkeypatch):
    import edgerec.devices.setup as setup_mod
    from edgerec.errors import ConfigError

    real = setup_mod._facts

    def as_armhf(conn):  # a Pi Zero 2 W on 32-bit Raspberry Pi OS
        f = real(conn)
        f.update(machine="armv7l", model="Raspberry Pi Zero 2 W Rev 1.0")
        return f

    monkeypatch.setattr(setup_mod, "_facts", as_armhf)
    root = tmp_path / "zero"
    with sshd_server.connect() as conn, pytest.raises(ConfigError, match="32-bit ARM system \\(armv7l\\): no inference "
                                                                          "backend publishes wheels") as err:
        setup_board(conn, root=str(root))
    assert "64-bit Raspberry Pi OS" in err.value.hint
    assert not root.exists()  # refused before anything was installed


@pytest.mark.ssh
def test_setup_upgrade_reinstalls_into_an_existing_venv(sshd_server, tmp_path):
    root = tmp_path / "board root"
    with sshd_server.connect() as conn:
        rep = setup_board(conn, root=str(root), venv=VENV, os_packages=False, dry_run=True, upgrade=True)
        plain = setup_board(conn, root=str(root), venv=VENV, os_packages=False, dry_run=True)
    steps, before = {s.name: s for s in rep.steps}, {s.name: s for s in plain.steps}
    assert steps["venv"].status == "planned" and "pip install --upgrade edgerec[" in steps["venv"].detail
    assert before["venv"].status == "already"  # without --upgrade an existing edgerec is left as it is

"""The emulated board's pieces, without building or starting it (fast; runs in the main suite).

What the end-to-end tests in test_emulated_board.py rely on: the files that make the root look like a Raspberry Pi 4
are read as a Pi's by the fingerprint, the profile matcher and the doctor; the skip reasons name what is missing.
"""

import os
import platform
import stat
import subprocess
from pathlib import Path

import pytest

from edgerec.bench.fingerprint import hardware
from edgerec.devices.doctor import check_throttling
from edgerec.devices.device_profile import match_profile


def _write_board_files(emulated_pi, root):
    for path, text in emulated_pi.board_files().items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(text.encode())
    return root


def test_board_files_read_as_a_raspberry_pi_4(emulated_pi, tmp_path):
    root = _write_board_files(emulated_pi, tmp_path)
    hw = hardware(root=root)
    assert hw["board_model"] == "Raspberry Pi 4 Model B Rev 1.1"  # NUL-terminated, as the kernel writes it
    assert hw["cores"] == 4 and hw["cpu_model"] == "BCM2835"
    assert match_profile(hw["board_model"], hw["cpu_model"], "aarch64").name == "rpi4"
    info = emulated_pi.CPUINFO
    assert info.count("CPU part\t: 0xd08") == 4 and "CPU implementer\t: 0x41" in info  # Cortex-A72, what LiteRT reads
    assert (root / "sys/firmware/devicetree/base/model").read_bytes().endswith(b"\0")
    # OpenVINO's CPU plugin reads the CPU's identity from sysfs: the same Cortex-A72 r0p3 as cpuinfo
    midr = int((root / "sys/devices/system/cpu/cpu3/regs/identification/midr_el1").read_text(), 16)
    assert (midr >> 24, (midr >> 4) & 0xFFF, midr & 0xF) == (0x41, 0xD08, 3)
    assert (root / "sys/devices/system/cpu/online").read_text().strip() == "0-3"


def test_setup_reads_the_model_where_the_emulated_board_has_it(tmp_path):
    """`device setup`'s probe falls back from /proc/device-tree (absent under emulation) to sysfs, as on a Pi."""
    from edgerec.devices.setup import _FACTS

    line = next(ln for ln in _FACTS.splitlines() if ln.startswith("printf 'model="))
    assert "/proc/device-tree/model" in line and "/sys/firmware/devicetree/base/model" in line


def test_vcgencmd_stand_in_says_it_is_emulated(emulated_pi, tmp_path, monkeypatch):
    vc = _write_board_files(emulated_pi, tmp_path) / "usr/local/bin/vcgencmd"
    vc.chmod(vc.stat().st_mode | stat.S_IXUSR)
    out = subprocess.run([str(vc), "get_throttled"], capture_output=True, text=True, check=True).stdout
    assert "emulated" in out
    monkeypatch.setenv("PATH", f"{vc.parent}:{os.environ['PATH']}")
    check = check_throttling()
    assert check.status == "warn" and "emulated" in check.detail  # never a made-up "not throttled"
    assert subprocess.run([str(vc), "get_config", "int"], capture_output=True).returncode == 1


def test_skip_reasons_name_what_is_missing(emulated_pi, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in emulated_pi.cannot_run()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert "already arm64" in emulated_pi.cannot_run()
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(emulated_pi, "TOOLS", {"debootstrap": "/nonexistent/debootstrap",
                                               "qemu-user-static": "/nonexistent/qemu-aarch64-static"})
    monkeypatch.setattr(emulated_pi.shutil, "which", lambda name: None)
    why = emulated_pi.cannot_run(install=True)
    assert "debootstrap and qemu-user-static missing and no apt-get" in why


def test_build_key_follows_the_recipe(emulated_pi, monkeypatch):
    key = emulated_pi.build_key()
    assert key == emulated_pi.build_key() and key.startswith("bookworm-arm64-")
    monkeypatch.setitem(emulated_pi.RECIPE, "include", [*emulated_pi.RECIPE["include"], "less"])
    assert emulated_pi.build_key() != key  # a changed recipe builds a new root


def test_mounts_under_reads_the_mount_table(emulated_pi, tmp_path):
    assert emulated_pi.mounts_under(tmp_path) == []
    if os.path.ismount("/proc"):
        assert "/proc" in emulated_pi.mounts_under(Path("/proc"))


def test_board_target_and_ssh_command(emulated_pi):
    b = emulated_pi.Board(dir="/x", root="/x/root", port=2222, pid=1, client_key="/x/k", known_hosts="/x/kh")
    assert b.target == "root@127.0.0.1:2222"
    argv = b.ssh_argv("uname -m")
    assert argv[0] == "ssh" and "BatchMode=yes" in argv and argv[-2:] == ["root@127.0.0.1", "uname -m"]


@pytest.mark.parametrize("status", ["(none)", ""])
def test_setup_warns_on_os_packages_no_apt_source_has(status):
    """python3-picamera2 exists only in Raspberry Pi's repository: setup names what will not work, and goes on."""
    from edgerec.devices.setup import _apt_candidate, _unavailable

    class Conn:
        def run(self, cmd, check=True, **kw):
            class R:
                stdout = f"python3-picamera2:\n  Installed: (none)\n  Candidate: {status}\n" if status else ""
                ok = True
            return R()

    assert not _apt_candidate(Conn(), "python3-picamera2")
    text = _unavailable(["python3-picamera2"])
    assert "picam://" in text and "Raspberry Pi's apt repository" in text

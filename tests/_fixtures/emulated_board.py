"""The emulated Raspberry Pi 4 of ``devices/emulated-pi/``: an arm64 Debian Bookworm root under qemu-user, sshd on
loopback. Slow (minutes): only tests marked ``board`` use it (``pytest -m board tests/devices/test_emulated_board.py``).

``emulated_pi`` is the script itself, loaded from its file (``devices/`` is not a package); it is cheap to import.
``emulated_board`` (session) builds the cached root when absent (~4 min, once per machine), starts a fresh board on a
free port and stops it at the end, leaving no process or mount; it skips with the script's reason where the machine
cannot run it (not root, no binfmt_misc, no debootstrap and no apt-get). ``board_wheel`` is a wheel of this checkout.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["emulated_pi", "load_emulated_pi", "emulated_board", "board_wheel", "board_ssh", "EMULATED_PI"]

EMULATED_PI = Path(__file__).resolve().parents[2] / "devices" / "emulated-pi" / "emulated_pi.py"


def load_emulated_pi():
    """The ``devices/emulated-pi/emulated_pi.py`` module."""
    spec = importlib.util.spec_from_file_location("emulated_pi", EMULATED_PI)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("emulated_pi", mod)  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return sys.modules["emulated_pi"]


@pytest.fixture(scope="session")
def emulated_pi():
    return load_emulated_pi()


@pytest.fixture(scope="session")
def emulated_board(emulated_pi, tmp_path_factory):
    """A running emulated board (``emulated_pi.Board``: ``target``, ``client_key``, ``known_hosts``, ``root``)."""
    why = emulated_pi.cannot_run(install=True)
    if why:
        pytest.skip(f"emulated board: {why}")
    folder = tmp_path_factory.mktemp("emulated-pi")
    # a machine shared with other work: the board's processes yield to it (timings here are not figures anyway)
    board = emulated_pi.start(folder, nice=int(os.environ.get("EDGEREC_BOARD_NICE", "19")))
    yield board
    emulated_pi.stop(folder)


def board_ssh(board, command: str, *, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``command`` on the board through the real ssh client."""
    r = subprocess.run(board.ssh_argv(command), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"on the board: {command}\nexit {r.returncode}\n{(r.stdout + r.stderr)[-3000:]}")
    return r


@pytest.fixture(scope="session")
def board_wheel(tmp_path_factory, repo_root):
    """``edgerec-<version>-py3-none-any.whl`` built from this checkout (what `device setup --package` copies over)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(repo_root),
                    "-w", str(out)], check=True, timeout=600, capture_output=True)
    return next(out.glob("edgerec-*.whl"))

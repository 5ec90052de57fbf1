"""A real OpenSSH server on 127.0.0.1 for deploy tests: own host key, own client key, own known_hosts.

``sshd_server`` (session) installs openssh-server when missing (apt-get, as root), starts
``/usr/sbin/sshd -D -f <config> -p <port>`` and stops it at the end. ``ssh_board`` (per test) is a fresh
"board": a temporary folder whose path has a space and a quote in it, set up with the local venv and a
small fake runtime that prints JSON-line predictions.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["sshd_server", "ssh_board", "SshServer", "start_sshd", "make_bundle", "fake_board", "stop_board", "FAKE_RUNTIME"]

SSHD = "/usr/sbin/sshd"
FAKE_RUNTIME = Path(__file__).with_name("fake_runtime.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_sshd() -> None:
    if os.path.exists(SSHD):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("openssh-server is not installed and cannot be installed here (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"],
                       capture_output=True, text=True, env=env)
    if r.returncode:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"],
                           capture_output=True, text=True, env=env)
    if r.returncode or not os.path.exists(SSHD):
        pytest.skip(f"apt-get install openssh-server failed: {r.stderr[-300:]}")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class SshServer:
    dir: Path
    port: int
    client_key: Path
    known_hosts: Path
    host_key: Path
    proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        import getpass

        return f"{getpass.getuser()}@127.0.0.1:{self.port}"

    def connect(self, **kw):
        from edgerec.devices.ssh import Target, connect

        kw.setdefault("identity", self.client_key)
        kw.setdefault("known_hosts", self.known_hosts)
        return connect(Target.parse(self.target), **kw)

    def session_pids(self) -> list[int]:
        """sshd processes serving connections (children of the listener)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def drop_connections(self) -> None:
        """Kill every live SSH session, as a network cut or a board reboot would."""
        import signal

        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.drop_connections()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sshd(folder: Path, *, client_key: Path | None = None, known_hosts: Path | None = None) -> SshServer:
    """Start one sshd on a free loopback port; its host key is appended to ``known_hosts``."""
    _ensure_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    host_key = folder / "host_ed25519"
    _keygen(host_key)
    if client_key is None:
        client_key = folder / "client_ed25519"
        _keygen(client_key)
    auth = folder / "authorized_keys"
    auth.write_text(Path(str(client_key) + ".pub").read_text())
    auth.chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation folder sshd insists on
    port = _free_port()
    cfg = folder / "sshd_config"
    cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nMaxStartups 200\nMaxSessions 100\nLogLevel ERROR\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg), "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "sshd.log", "wb"))
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(folder / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.05)
    known_hosts = known_hosts or folder / "known_hosts"
    pub = Path(str(host_key) + ".pub").read_text().split()
    with open(known_hosts, "a") as f:
        f.write(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    return SshServer(folder, port, client_key, known_hosts, host_key, proc)


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def make_bundle(folder: Path, *, name: str = "digits", version: str = "1", behaviour: str = "ok",
                size: int = 4096, labels=("zero", "one")) -> Path:
    """A small bundle with a valid manifest (fake model bytes; the fake runtime reads ``behaviour``)."""
    from edgerec.bundle import Artifact, InputSpec, Manifest, sha256_file, write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model int8.tflite"
    model.write_bytes(os.urandom(size))
    (folder / "labels dir").mkdir(exist_ok=True)
    extra = folder / "labels dir" / "notes.txt"
    extra.write_text(f"{name} {version}\n")
    art = Artifact(format="tflite", precision="int8", file=model.name, files=(model.name, "labels dir/notes.txt"),
                   sha256={model.name: sha256_file(model), "labels dir/notes.txt": sha256_file(extra)},
                   size_bytes=size, layout="NHWC", input_dtype="int8", output_dtype="int8")
    m = Manifest(name=name, version=version, task="single_label", labels=tuple(labels),
                 input=InputSpec(height=32, width=32), artifacts=(art,),
                 provenance={"edgerec_version": "0.1.0", "created": "2026-01-01T00:00:00Z", "test_behaviour": behaviour})
    write_manifest(m, folder)
    return folder


def fake_board(root: Path) -> Path:
    """Write what `edgerec device setup` writes (tested on its own) for a supervised board running the fake runtime."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    (root / "board.json").write_text(json.dumps({
        "python": sys.executable, "profile": None, "camera_uri": "file:///dev/null", "threads": None,
        "service": "supervised", "unit": "edgerec",
        "command": ["{python}", str(FAKE_RUNTIME), "{bundle}", "{source}", "{jsonl}"],
    }))
    return root


@pytest.fixture
def ssh_board(sshd_server, tmp_path):
    """(server, remote root) of a board whose path holds a space and a quote."""
    root = fake_board(tmp_path / "board home" / "it's here")
    yield sshd_server, root
    stop_board(root)


def stop_board(root: Path) -> None:
    """Stop the board's service, then any process still working on it (a board-side check that outlived its test)."""
    import signal

    from edgerec.devices import board

    if (root / "board.json").exists():
        board.stop(root)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(str(root).encode() in arg for arg in cmdline):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

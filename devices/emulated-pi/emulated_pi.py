#!/usr/bin/env python3
"""A Raspberry Pi in a box: an arm64 Debian Bookworm root run under qemu-user, reachable over SSH on loopback.

For contributors: it lets the board tier (``edgerec device setup``, ``deploy``, ``status``, ``rollback``,
``device doctor``, ``bundle verify --run``) run on aarch64 wheels without a board. Nothing here is needed by users,
and nothing measured here is a board figure: qemu translates every instruction.

    sudo python3 devices/emulated-pi/emulated_pi.py probe          # can this machine run it? (exit 1 + reason if not)
    sudo python3 devices/emulated-pi/emulated_pi.py build          # once; cached under /var/cache/edgerec-board
    sudo python3 devices/emulated-pi/emulated_pi.py start /tmp/pi  # prints the state (port, key, known_hosts)
    ssh -i /tmp/pi/client_ed25519 -o UserKnownHostsFile=/tmp/pi/known_hosts -p PORT root@127.0.0.1
    sudo python3 devices/emulated-pi/emulated_pi.py stop /tmp/pi   # no process, no mount left

What makes the root look like a Raspberry Pi 4: a Cortex-A72 ``/proc/cpuinfo`` bind-mounted over the host's (LiteRT
reads it and segfaults on the x86 one), ``QEMU_CPU=cortex-a72`` for every process, the device-tree model at
``/sys/firmware/devicetree/base/model`` (what ``/proc/device-tree`` links to on a Pi; procfs itself cannot be faked,
so ``/proc/device-tree`` is absent), a ``vcgencmd`` that answers that it is emulated, and the hostname
``emulated-pi4``. Each ``start`` runs on a fresh overlay over the cached root, so a board starts clean every time
and the cache is never written; pip's download cache is shared between starts.

Only the Python standard library: it runs with the host's ``python3`` as well as with the project's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CPUINFO", "MODEL", "VCGENCMD", "RECIPE", "TOOLS", "cannot_run", "cache_dir", "build_key", "root_dir", "build", "start", "stop",
           "Board", "board_files", "mounts_under"]

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
HOSTNAME = "emulated-pi4"
QEMU_CPU = "cortex-a72"
# openssh-server: the board is reached the way a real one is; procfs: ps/kill for a person debugging a deploy
RECIPE = {"suite": SUITE, "arch": "arm64", "variant": "minbase", "mirror": MIRROR,
          "include": ["python3", "python3-venv", "python3-pip", "openssh-server", "ca-certificates", "procps"]}
MODEL = "Raspberry Pi 4 Model B Rev 1.1"
COMPATIBLE = ("raspberrypi,4-model-b", "brcm,bcm2711")
MIDR_EL1 = "0x00000000410fd083"  # Arm (0x41), Cortex-A72 (part 0xd08), r0p3: what cpuinfo says

_CORE = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""
# A Raspberry Pi 4's /proc/cpuinfo (4x Cortex-A72), as its kernel prints it
CPUINFO = "".join(_CORE.format(n=n) for n in range(4)) + (
    f"Hardware\t: BCM2835\nRevision\t: c03111\nSerial\t\t: 10000000emulated\nModel\t\t: {MODEL}\n")

# Honest answers: a tool reading these sees that the board is emulated (doctor: "unreadable vcgencmd output:
# throttled=emulated ..."; bench fingerprint: {"raw": ...}), never a made-up "not throttled".
VCGENCMD = """#!/bin/sh
# edgerec emulated board: there is no VideoCore firmware under qemu-user
case "$1" in
  get_throttled) echo "throttled=emulated (qemu-user, no VideoCore firmware)" ;;
  measure_temp) echo "temp=emulated (qemu-user)" ;;
  version) echo "emulated Raspberry Pi 4 (edgerec devices/emulated-pi, qemu-user)" ;;
  *) echo "vcgencmd: emulated board (qemu-user): '$*' is not available" >&2; exit 1 ;;
esac
"""

ARM_MACHINES = ("aarch64", "arm64")
# Debian package -> the file it provides that the build needs
TOOLS = {"debootstrap": "/usr/sbin/debootstrap", "qemu-user-static": "/usr/bin/qemu-aarch64-static"}


def log(msg: str) -> None:
    print(f"[emulated-pi] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """``$EDGEREC_BOARD_CACHE``, else ``/var/cache/edgerec-board``."""
    return Path(os.environ.get("EDGEREC_BOARD_CACHE", "/var/cache/edgerec-board"))


def build_key() -> str:
    """Changes when anything that shapes the cached root changes: the recipe or the code that builds it."""
    text = json.dumps(RECIPE, sort_keys=True) + CPUINFO + VCGENCMD + inspect.getsource(_customise)
    return f"{SUITE}-arm64-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def board_files() -> dict[str, str]:
    """The files that make the root look like a Raspberry Pi 4, by their path inside the board."""
    files = {
        "/proc/cpuinfo": CPUINFO,
        "/sys/firmware/devicetree/base/model": MODEL + "\0",
        "/sys/firmware/devicetree/base/compatible": "\0".join(COMPATIBLE) + "\0",
        "/usr/local/bin/vcgencmd": VCGENCMD,
    }
    # the CPU as sysfs shows it: OpenVINO's CPU plugin (oneDNN's xbyak_aarch64) reads MIDR_EL1 here and, without it,
    # fails every convolution; glibc counts online CPUs from `online`
    cpu = "/sys/devices/system/cpu"
    files.update({f"{cpu}/{k}": "0-3\n" for k in ("online", "possible", "present")})
    files[f"{cpu}/offline"] = "\n"
    for n in range(4):
        files[f"{cpu}/cpu{n}/regs/identification/midr_el1"] = MIDR_EL1 + "\n"
        files[f"{cpu}/cpu{n}/regs/identification/revidr_el1"] = "0x0000000000000000\n"
        # one package, one cluster, four single-thread cores; hwloc (OpenVINO's TBB) aborts without a topology
        topo = f"{cpu}/cpu{n}/topology"
        files.update({f"{topo}/physical_package_id": "0\n", f"{topo}/cluster_id": "0\n", f"{topo}/core_id": f"{n}\n"})
        for kind in ("thread_siblings", "core_cpus"):
            files[f"{topo}/{kind}"], files[f"{topo}/{kind}_list"] = f"{1 << n:x}\n", f"{n}\n"
        for kind in ("core_siblings", "package_cpus", "cluster_cpus"):
            files[f"{topo}/{kind}"], files[f"{topo}/{kind}_list"] = "f\n", "0-3\n"
    return files


# --- can this machine do it ---------------------------------------------------------------------------------

def _binfmt_entry() -> Path:
    return Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def cannot_run(*, install: bool = False) -> str | None:
    """Why this machine cannot run the emulated board, or ``None`` when it can.

    ``install``: apt-get install what is missing (qemu-user-static, debootstrap, binfmt-support) and register
    qemu with binfmt_misc, instead of reporting it.
    """
    if sys.platform != "linux":
        return f"needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot and mounts)"
    if platform.machine() in ARM_MACHINES:
        return "this machine is already arm64: run the tests on it directly (qemu not needed)"
    missing = [pkg for pkg, path in TOOLS.items() if not Path(path).exists()]
    apt = shutil.which("apt-get")
    if missing and install and apt:
        _apt_install(["qemu-user-static", "debootstrap", "binfmt-support"])
        missing = [pkg for pkg, path in TOOLS.items() if not Path(path).exists()]
    if missing:
        return (f"{' and '.join(missing)} missing" + ("" if apt else " and no apt-get to install them")
                + ": apt-get install qemu-user-static debootstrap binfmt-support")
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs (each board starts on an overlay over the cached root)"
    why = _ensure_binfmt() if install else _binfmt_state()
    return why


def _apt_install(pkgs: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]
    if subprocess.run(cmd, capture_output=True, env=env).returncode:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        subprocess.run(cmd, capture_output=True, env=env)


def _binfmt_state() -> str | None:
    entry = _binfmt_entry()
    if not Path("/proc/sys/fs/binfmt_misc/register").exists():
        return "binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
    if not entry.exists():
        return "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"
    text = entry.read_text()
    if not text.startswith("enabled"):
        return "the qemu-aarch64 binfmt_misc entry is disabled (update-binfmts --enable qemu-aarch64)"
    flags = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("flags:")), "")
    if "F" not in flags:  # without F the interpreter must exist inside the chroot, which we do not copy
        return f"the qemu-aarch64 binfmt_misc entry lacks the F (fix binary) flag (flags: {flags or 'none'})"
    return None


def _ensure_binfmt() -> str | None:
    reg = Path("/proc/sys/fs/binfmt_misc/register")
    if not reg.exists():
        r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"],
                           capture_output=True, text=True)
        if r.returncode:
            return f"cannot mount binfmt_misc: {r.stderr.strip()} (a container without CAP_SYS_ADMIN?)"
    if not _binfmt_entry().exists():
        if shutil.which("update-binfmts"):
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
        conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
        if not _binfmt_entry().exists() and conf.exists():  # no systemd-binfmt: register the line ourselves
            line = next(ln for ln in conf.read_text().splitlines() if ln.startswith(":"))
            try:
                reg.write_text(line)
            except OSError as e:
                return f"cannot register qemu-aarch64 with binfmt_misc: {e}"
    return _binfmt_state()


# --- the cached root ----------------------------------------------------------------------------------------

def root_dir() -> Path:
    return cache_dir() / build_key() / "root"


def build(*, force: bool = False) -> Path:
    """The cached root for this recipe, built when absent (~3-5 min under emulation). Older builds are removed."""
    why = cannot_run(install=True)
    if why:
        raise SystemExit(f"emulated board: {why}")
    final = cache_dir() / build_key()
    if (final / "root" / "etc" / "edgerec-emulated" / "built").exists() and not force:
        return final / "root"
    cache_dir().mkdir(parents=True, exist_ok=True)
    tmp = cache_dir() / f".{build_key()}.tmp"
    _remove_tree(tmp)
    t0 = time.monotonic()
    cmd = ["debootstrap", f"--arch={RECIPE['arch']}", f"--variant={RECIPE['variant']}",
           f"--include={','.join(RECIPE['include'])}", SUITE, str(tmp / "root"), MIRROR]
    log(" ".join(cmd))
    (tmp / "root").mkdir(parents=True)
    r = subprocess.run(["nice", "-n", "19", *cmd], capture_output=True, text=True)
    if r.returncode:
        tail = (r.stdout + r.stderr)[-1500:]
        _remove_tree(tmp)
        raise SystemExit(f"emulated board: debootstrap failed:\n{tail}")
    _customise(tmp)
    timings = {"build_s": round(time.monotonic() - t0, 1)}
    (tmp / "build.json").write_text(json.dumps({"key": build_key(), "recipe": RECIPE, **timings}, indent=2))
    _remove_tree(final)
    tmp.rename(final)
    for old in cache_dir().iterdir():  # one root per machine is enough; a changed recipe replaces it
        if old.is_dir() and old.name not in (final.name, "pip") and not old.name.startswith("."):
            _remove_tree(old)
    log(f"built {final / 'root'} in {time.monotonic() - t0:.0f} s")
    return final / "root"


def _customise(tmp: Path) -> None:
    """What the cached root holds beyond debootstrap: the Pi's files, a client key, apt lists."""
    root = tmp / "root"
    marker = root / "etc" / "edgerec-emulated"
    marker.mkdir(parents=True, exist_ok=True)
    (marker / "cpuinfo").write_text(CPUINFO)
    vc = root / "usr" / "local" / "bin" / "vcgencmd"
    vc.write_text(VCGENCMD)
    vc.chmod(0o755)
    (root / "etc" / "hostname").write_text(HOSTNAME + "\n")
    (root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n")
    # key-only root login on loopback; QEMU_CPU reaches every process of every session
    (root / "etc" / "ssh" / "sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "ssh" / "sshd_config.d" / "edgerec-emulated.conf").write_text(
        "ListenAddress 127.0.0.1\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\n"
        f"SetEnv QEMU_CPU={QEMU_CPU}\nMaxStartups 100\nMaxSessions 50\nLogLevel ERROR\n")
    key = tmp / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgerec-emulated-board", "-f", str(key)],
                   check=True)
    ssh = root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(Path(str(key) + ".pub").read_text())
    (ssh / "authorized_keys").chmod(0o600)
    if not (root / "etc" / "ssh" / "ssh_host_ed25519_key").exists():
        _chroot(root, ["ssh-keygen", "-A"])
    # apt lists, as a real board has them (device setup's apt-get install needs them)
    with _mounted(root):
        _chroot(root, ["apt-get", "update", "-q"])
        _chroot(root, ["apt-get", "clean"])
    (marker / "built").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")


def _chroot(root: Path, argv: list[str]) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "QEMU_CPU": QEMU_CPU, "LANG": "C.UTF-8", "HOME": "/root"}
    r = subprocess.run(["nice", "-n", "19", "chroot", str(root), *argv], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"emulated board: {' '.join(argv)} failed in the root:\n{(r.stdout + r.stderr)[-1500:]}")


class _mounted:
    """/proc, /dev and /sys plus the host's DNS and CA bundle, only while building."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self):
        _self_bind(self.root)
        _mount_board(self.root)
        return self

    def __exit__(self, *exc):
        _kill_inside(self.root)
        _umount_tree(self.root)


# --- a running board ----------------------------------------------------------------------------------------

@dataclass
class Board:
    """What ``start`` leaves in its folder (``state.json``) and what a client needs to reach the board."""

    dir: str
    root: str  # the overlay the board runs in
    port: int
    pid: int  # the sshd listener
    client_key: str
    known_hosts: str
    user: str = "root"

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def ssh_argv(self, command: str | None = None) -> list[str]:
        argv = ["ssh", "-i", self.client_key, "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(self.port), f"{self.user}@127.0.0.1"]
        return argv + ([command] if command else [])

    @classmethod
    def load(cls, folder: str | Path) -> "Board":
        return cls(**json.loads((Path(folder) / "state.json").read_text()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: str | Path, *, port: int | None = None, nice: int = 0, timeout: float = 120) -> Board:
    """Start a fresh board in ``folder`` (an overlay over the cached root) with sshd on ``127.0.0.1:port``.

    ``nice``: the niceness of the board's every process (a board sharing a busy machine: 19).
    """
    lower = build()
    inst = Path(folder).resolve()
    if (inst / "state.json").exists():
        stop(inst)
    inst.mkdir(parents=True, exist_ok=True)
    _self_bind(inst)  # private: nothing mounted below it propagates to the host's mount tree
    try:
        for sub in ("upper", "work", "root"):
            (inst / sub).mkdir(exist_ok=True)
        root = inst / "root"
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={lower},upperdir={inst / 'upper'},workdir={inst / 'work'}", str(root)])
        _mount_board(root, pip_cache=cache_dir() / "pip")
        shutil.copy(lower.parent / "client_ed25519", inst / "client_ed25519")
        (inst / "client_ed25519").chmod(0o600)
        port = port or _free_port()
        host_pub = (root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        (inst / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "QEMU_CPU": QEMU_CPU, "LANG": "C.UTF-8"}
        (root / "run" / "sshd").mkdir(parents=True, exist_ok=True)
        # own UTS namespace: the board's hostname is its own, the host's is untouched
        proc = subprocess.Popen(["nice", "-n", str(nice), "unshare", "--uts", "sh", "-c", f'hostname {HOSTNAME} && exec chroot "$0" '
                                 f"/usr/sbin/sshd -D -e -p {port}", str(root)],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(inst / "sshd.log", "wb"), start_new_session=True)
        board = Board(str(inst), str(root), port, proc.pid, str(inst / "client_ed25519"), str(inst / "known_hosts"))
        (inst / "state.json").write_text(json.dumps(asdict(board), indent=2))
        _wait_ssh(board, proc, timeout)
        return board
    except BaseException:
        stop(inst)
        raise


def _wait_ssh(board: Board, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", board.port), timeout=2) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            logtext = (Path(board.dir) / "sshd.log").read_text(errors="replace")[-800:]
            raise SystemExit(f"emulated board: sshd did not come up on port {board.port}: {logtext}")
        time.sleep(0.2)


def stop(folder: str | Path, *, keep: bool = False) -> None:
    """Stop every process running in the board, unmount everything under ``folder``; remove it unless ``keep``."""
    inst = Path(folder).resolve()
    root = inst / "root"
    _kill_inside(root)
    _umount_tree(inst)
    if not keep:
        _remove_tree(inst)
    else:
        (inst / "state.json").unlink(missing_ok=True)


def _self_bind(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if not _is_mountpoint(path):
        _run(["mount", "--bind", str(path), str(path)])
    _run(["mount", "--make-rprivate", str(path)])


def _mount_board(root: Path, *, pip_cache: Path | None = None) -> None:
    """The kernel file systems, the Pi's files over the host's, DNS and the host's CA bundle."""
    _run(["mount", "-t", "proc", "proc", str(root / "proc")])
    for fs in ("dev", "sys"):
        _run(["mount", "--rbind", f"/{fs}", str(root / fs)])
        _run(["mount", "--make-rslave", str(root / fs)])  # the host's events reach the board, never the reverse
    # the device tree and the CPUs: tmpfs over the host's /sys/firmware and /sys/devices/system/cpu, in the board only
    for sub in ("firmware", "devices/system/cpu"):
        _run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "edgerec-board", str(root / "sys" / sub)])
    for path, text in board_files().items():
        if path.startswith("/sys/"):
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(text.encode())
    # a file bind-mounted over one procfs file: LiteRT reads the CPU from it
    _run(["mount", "--bind", "-o", "ro", str(root / "etc" / "edgerec-emulated" / "cpuinfo"), str(root / "proc" / "cpuinfo")])
    # the host's DNS and CA bundle (PyPI may be reached through a proxy whose CA only the host trusts)
    etc = root / "etc"
    (etc / "resolv.conf").unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", etc / "resolv.conf")
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.exists():
        (etc / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        shutil.copy(host_ca, etc / "ssl" / "certs" / "edgerec-host-ca.crt")
        (etc / "pip.conf").write_text("[global]\ncert = /etc/ssl/certs/edgerec-host-ca.crt\n"
                                      "disable-pip-version-check = true\n")
    if pip_cache is not None:
        pip_cache.mkdir(parents=True, exist_ok=True)
        dest = root / "root" / ".cache" / "pip"
        dest.mkdir(parents=True, exist_ok=True)
        _run(["mount", "--bind", str(pip_cache), str(dest)])


def _inside(pid: str, root: Path) -> bool:
    try:
        link = os.readlink(f"/proc/{pid}/root")
    except OSError:
        return False
    return link == str(root) or link.startswith(str(root) + "/")


def _kill_inside(root: Path, *, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process whose root directory is inside ``root``; their pids."""
    root = root.resolve()
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _inside(p, root)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_inside(str(p), root) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if _inside(str(p), root)]
        if not pids:
            break
    return pids


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    path = str(path.resolve())
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == path or point.startswith(path + "/"):
            out.append(point)
    return sorted(out, key=lambda p: p.count("/"), reverse=True)


def _is_mountpoint(path: Path) -> bool:
    return str(path.resolve()) in {ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()}


def _umount_tree(path: Path) -> None:
    for _ in range(3):
        points = mounts_under(path)
        if not points:
            return
        subprocess.run(["umount", "-R", str(path)], capture_output=True)
        for point in mounts_under(path):
            subprocess.run(["umount", point], capture_output=True)
        time.sleep(0.2)
    left = mounts_under(path)
    if left:
        for point in left:  # busy: detach, so nothing shows in the mount table
            subprocess.run(["umount", "-l", point], capture_output=True)
        log(f"lazily unmounted (busy): {' '.join(left)}")


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    if mounts_under(path):  # never rm -rf through a bind mount of /dev or /sys
        raise SystemExit(f"emulated board: {path} still has mounts: {mounts_under(path)}")
    shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"emulated board: {' '.join(argv)} failed: {r.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="emulated_pi.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("probe", help="say whether this machine can run the board (exit 1 with the reason if not)")
    b = sub.add_parser("build", help="build the cached root (once; again with --force)")
    b.add_argument("--force", action="store_true")
    s = sub.add_parser("start", help="start a fresh board in FOLDER; prints its state as JSON")
    s.add_argument("folder")
    s.add_argument("--port", type=int)
    s.add_argument("--nice", type=int, default=0, help="niceness of every process on the board (0-19)")
    t = sub.add_parser("stop", help="stop the board in FOLDER: no process or mount left")
    t.add_argument("folder")
    t.add_argument("--keep", action="store_true", help="keep the overlay's files (what the board wrote)")
    sub.add_parser("where", help="print the cached root's path and whether it is built")
    args = p.parse_args(argv)
    if args.cmd == "probe":
        why = cannot_run()
        print(why or "ok")
        return 1 if why else 0
    if args.cmd == "build":
        print(build(force=args.force))
    elif args.cmd == "start":
        print(json.dumps(asdict(start(args.folder, port=args.port, nice=args.nice)), indent=2))
    elif args.cmd == "stop":
        stop(args.folder, keep=args.keep)
    elif args.cmd == "where":
        built = (root_dir() / "etc" / "edgerec-emulated" / "built").exists()
        print(f"{root_dir()} ({'built' if built else 'not built'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``edgerec device setup user@host``: prepare a board once (idempotent), printing each step.

Steps, each skipped when already done:

1. detect the board (``/proc/device-tree/model``, ``uname -m``, Python, systemd, the user's groups) and pick
   its profile (``--profile`` wins);
2. OS packages the profile's camera stack needs (``apt-get install``, through ``sudo -n`` when not root);
3. a virtual environment ``ROOT/venv`` (``--system-site-packages`` where the camera library comes from
   apt, as picamera2 does on Raspberry Pi OS) with ``edgerec[<runtime extra>]``; or ``--venv`` to use an
   existing one on the board;
4. ``ROOT/board.json``: python, profile, camera URI, service kind;
5. the service: a systemd unit rendered from ``runtime/edgerec.service.in`` where systemd runs, else the
   supervised background process (pid file, log file, restart on crash);
6. membership of the ``video`` group, without which the camera does not open.
"""

from __future__ import annotations

import json
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DeployError
from .deploy import DEFAULT_ROOT, Board
from .ssh import Connection, q

__all__ = ["SetupStep", "SetupReport", "setup_board", "render_unit", "systemd_quote", "UNIT_TEMPLATE"]

def _find_template(name: str) -> Path:
    """A file of the top-level ``runtime/`` folder: in a checkout, or installed as data under ``<prefix>/share/edgerec``."""
    import sys

    for base in (Path(__file__).resolve().parents[2] / "runtime", Path(sys.prefix) / "share" / "edgerec" / "runtime"):
        if (base / name).is_file():
            return base / name
    return Path(__file__).resolve().parents[2] / "runtime" / name


UNIT_TEMPLATE = _find_template("edgerec.service.in")


@dataclass
class SetupStep:
    name: str
    status: str  # done | already | skipped | warn | failed | planned
    detail: str = ""


@dataclass
class SetupReport:
    target: str
    profile: str | None
    steps: list[SetupStep] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str = "") -> SetupStep:
        step = SetupStep(name, status, detail)
        self.steps.append(step)
        return step

    def table(self) -> str:
        width = max((len(s.name) for s in self.steps), default=4)
        lines = [f"{self.target}  (profile: {self.profile or 'generic'})"]
        lines += [f"  {s.name:<{width}}  {s.status:<8} {s.detail}" for s in self.steps]
        return "\n".join(lines)


def systemd_quote(arg: str) -> str:
    """One ExecStart word: double-quoted with C escapes when needed; '%' and '$' doubled (systemd specifiers)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in " \t\"'\\;"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(*, python: str, root: str, user: str, profile: str = "generic", threads: int | None = None,
                groups: str = "video", template: Path | None = None) -> str:
    """The systemd unit for a board, from ``runtime/edgerec.service.in``."""
    template = template or UNIT_TEMPLATE
    if not template.is_file():
        raise ConfigError(f"unit template {template} is missing", hint="reinstall edgerec from a full checkout")
    for what, value in (("root", root), ("python", python), ("user", user)):
        if any(c in value for c in "\n\r"):
            raise ConfigError(f"{what} {value!r} cannot go into a systemd unit (newline)")
    exec_start = " ".join(systemd_quote(a) for a in (python, "-m", "edgerec.devices.board", root, "exec"))
    return string.Template(template.read_text()).substitute(
        root=root.replace("%", "%%"),
        profile=profile,
        user=user,
        groups=groups,
        threads=threads or 1,
        exec_start=exec_start,
        log=(root + "/run/service.log").replace("%", "%%"),
    )


def _profile(name: str | None, facts: dict):
    from .device_profile import load_profile, match_profile

    if name:
        return load_profile(name)
    return match_profile(facts.get("model"), None, facts.get("machine"))


_FACTS = r"""
printf 'machine=%s\n' "$(uname -m)"
printf 'model=%s\n' "$( { tr -d '\0' < /proc/device-tree/model || tr -d '\0' < /sys/firmware/devicetree/base/model; } 2>/dev/null)"
printf 'user=%s\n' "$(id -un)"
printf 'uid=%s\n' "$(id -u)"
printf 'groups=%s\n' "$(id -Gn)"
printf 'python=%s\n' "$(command -v python3)"
printf 'systemd=%s\n' "$( [ -d /run/systemd/system ] && echo yes || echo no)"
printf 'apt=%s\n' "$(command -v apt-get)"
printf 'sudo=%s\n' "$( [ "$(id -u)" = 0 ] && echo root || (sudo -n true 2>/dev/null && echo yes || echo no))"
"""


# 32-bit ARM (armhf Raspberry Pi OS; Pi Zero 2 / older installs): checked on PyPI for Python 3.11 (Bookworm) and
# 3.9 (Bullseye): ai-edge-litert, onnxruntime and openvino publish no armv7l wheels; tflite-runtime's last is 2.13
# for Python 3.9, below what edgerec needs (3.10). Nothing could run a model, so setup refuses before installing.
_ARMHF = ("no inference backend publishes wheels for it (ai-edge-litert, onnxruntime and openvino have aarch64 only; "
          "tflite-runtime's last armv7l wheel is for Python 3.9, edgerec needs 3.10+)")
_NO_WHEELS = {"armv7l": _ARMHF, "armv6l": _ARMHF, "armhf": _ARMHF}

# What stops working without an OS package the apt sources here do not have
_WITHOUT = {
    "python3-picamera2": "picam:// cameras (picamera2 and libcamera come from Raspberry Pi's apt repository, "
                         "archive.raspberrypi.com, absent from these apt sources); file, RTSP and V4L2 sources still work",
    "python3-libcamera": "picam:// cameras (libcamera's Python bindings come from Raspberry Pi's apt repository)",
}


def _apt_candidate(conn: Connection, pkg: str) -> bool:
    """Whether the board's apt sources offer ``pkg`` (``apt-cache policy`` prints a candidate version)."""
    out = conn.run(f"apt-cache policy {q(pkg)} 2>/dev/null", check=False).stdout
    cand = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("Candidate:")), "")
    return bool(cand) and cand != "(none)"


def _unavailable(pkgs: list[str]) -> str:
    what = "; ".join(f"{p}: {_WITHOUT.get(p, 'what needs it will not work')}" for p in pkgs)
    return f"not in this board's apt sources, not installed: {what}"


def _facts(conn: Connection) -> dict:
    out = conn.run(_FACTS, what="detecting the board").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def setup_board(
    conn: Connection,
    *,
    profile: str | None = None,
    root: str = DEFAULT_ROOT,
    venv: str | None = None,
    package: str | None = None,
    os_packages: bool = True,
    service: str = "auto",
    camera_uri: str | None = None,
    command: list[str] | None = None,
    run_args: list[str] | None = None,
    collect: bool = False,
    dry_run: bool = False,
    upgrade: bool = False,
) -> SetupReport:
    """Prepare the board behind ``conn``; safe to run again (each step reports ``already``).

    ``venv``: use this existing environment on the board instead of creating ``ROOT/venv``.
    ``package``: what pip installs into a new venv (default ``edgerec[<runtime extra>]``; a wheel path works).
    ``upgrade``: upgrade edgerec (and its backend) in an existing venv, e.g. when a bundle needs a newer schema.
    ``service``: ``auto`` (systemd when it runs, else supervised), ``systemd`` or ``supervised``.
    ``command``: the runtime command template instead of ``edgerec run`` (``{python} {bundle} {source} {jsonl}``).
    ``run_args``: extra arguments for the runtime, e.g. ``["--threads", "2"]``.
    ``collect``: the service saves the frames its model doubts into ``ROOT/collect`` (``edgerec run --collect``;
    the ``--collect-*`` limits go in ``run_args``), for ``edgerec data pull``.
    """
    facts = _facts(conn)
    if facts.get("machine") in _NO_WHEELS:
        raise ConfigError(f"{conn.target} runs a 32-bit ARM system ({facts['machine']}): {_NO_WHEELS[facts['machine']]}",
                          hint="install the 64-bit Raspberry Pi OS (Bookworm, aarch64) on this board; a Pi 3, 4, 5 and "
                               "Zero 2 W run it")
    prof = _profile(profile, facts)
    st = _Setup(conn, facts, prof, Board(conn, root), SetupReport(str(conn.target), prof.name if prof else None),
                "" if facts.get("sudo") == "root" else "sudo -n ", dry_run)
    st.rep.add("board", "found", f"{facts.get('model') or facts.get('machine')} as {facts.get('user')}, "
                                 f"python {facts.get('python') or 'missing'}")
    if prof and prof.arch and facts.get("machine") and prof.arch != facts["machine"]:
        raise ConfigError(f"profile {prof.name} is for {prof.arch}, but {conn.target} is {facts['machine']}",
                          hint="pass the right --profile (or none to detect it)")
    _os_packages(st, os_packages)
    python = _venv(st, venv, package, upgrade)
    cfg, changed = _board_json(st, python, service=service, camera_uri=camera_uri, command=command,
                               run_args=run_args, collect=collect)
    _service(st, cfg, changed)
    _video_group(st)
    return st.rep


@dataclass
class _Setup:
    """What every setup step reads: the connection, the board's facts and profile, and the report it adds to."""

    conn: Connection
    facts: dict
    prof: Any
    board: Board
    rep: SetupReport
    sudo: str  # "" as root, else "sudo -n "
    dry_run: bool


def _os_packages(st: _Setup, wanted: bool) -> None:
    """1. The profile's OS packages (apt); one only another repository has is a warning, not a failure."""
    conn, facts, rep, sudo = st.conn, st.facts, st.rep, st.sudo
    pkgs = list(st.prof.os_packages) if st.prof else []
    if not pkgs:
        rep.add("os packages", "skipped", "none needed")
        return
    if not wanted:
        rep.add("os packages", "skipped", f"--no-os-packages (needed: {' '.join(pkgs)})")
        return
    missing = [p for p in pkgs if not conn.run(f"dpkg -s {q(p)} >/dev/null 2>&1", check=False).ok]
    absent = []
    if missing and facts.get("apt") and not st.dry_run:
        # a package only another repository has (python3-picamera2: Raspberry Pi's own) is a warning, not a failure
        absent = [p for p in missing if not _apt_candidate(conn, p)]
        missing = [p for p in missing if p not in absent]
    if absent:
        rep.add("os packages n/a", "warn", _unavailable(absent))
    if not missing:
        rep.add("os packages", "already", " ".join(p for p in pkgs if p not in absent) or "none installable")
    elif st.dry_run:
        rep.add("os packages", "planned", f"{sudo}apt-get install -y {' '.join(missing)}")
    elif not facts.get("apt"):
        rep.add("os packages", "failed", f"no apt-get: install {' '.join(missing)} with the board's package manager")
    elif sudo and facts.get("sudo") != "yes":
        raise DeployError(f"{conn.target}: installing {' '.join(missing)} needs root and sudo asks for a password",
                          hint=f"run on the board: sudo apt-get install -y {' '.join(missing)}; or pass --no-os-packages")
    else:
        conn.run(f"{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y " + " ".join(q(p) for p in missing),
                 timeout=1800, what="apt-get install")
        rep.add("os packages", "done", " ".join(missing))


def _venv(st: _Setup, venv: str | None, package: str | None, upgrade: bool) -> str:
    """2. The virtual environment (an existing one, or ``ROOT/venv``); returns its python."""
    conn, rep, board, dry_run = st.conn, st.rep, st.board, st.dry_run
    extra = st.prof.runtime_extra if st.prof else "runtime"
    if venv:
        python = venv.rstrip("/") + "/bin/python"
        r = conn.run(f"{q(python)} -c 'import edgerec; print(edgerec.__version__)'", check=False)
        if not r.ok:
            raise DeployError(f"{conn.target}: {python} cannot import edgerec", hint="install edgerec into that venv or drop --venv")
        if not upgrade:
            rep.add("venv", "already", f"{venv} (edgerec {r.stdout.strip()})")
        elif dry_run:
            rep.add("venv", "planned", f"{python} -m pip install --upgrade {package or f'edgerec[{extra}]'}")
        else:
            conn.run(f"{q(python)} -m pip install --upgrade {q(package or f'edgerec[{extra}]')}", timeout=3600,
                     what="upgrading edgerec")
            rep.add("venv", "done", f"{venv}: upgraded from edgerec {r.stdout.strip()}")
        return python
    path = board.path("venv")
    python = path + "/bin/python"
    ssp = bool(st.prof and st.prof.venv_system_site_packages)
    spec = package or f"edgerec[{extra}]"
    # a wheel on this machine ("dist/edgerec-0.1.0-py3-none-any.whl", optionally "[onnx]"): copy it over first,
    # and install it with the profile's runtime extra unless the extras are named
    base, bracket, extras = (package or "").partition("[")
    local = Path(base).expanduser() if package else None
    if local is not None and local.is_file() and not dry_run:
        conn.run(f"mkdir -p {q(board.root)}", what="creating folders")
        remote = board.path(local.name)
        conn.put(local, remote)
        spec = remote + (bracket + extras if bracket else f"[{extra}]")
    have = conn.run(f"{q(python)} -c 'import edgerec' 2>/dev/null", check=False).ok
    if have and not package and not upgrade:
        rep.add("venv", "already", path)
    elif dry_run:
        rep.add("venv", "planned", f"python3 -m venv{' --system-site-packages' if ssp else ''} {path}; pip install {spec}")
    else:
        conn.run(f"test -x {q(python)} || python3 -m venv {'--system-site-packages ' if ssp else ''}{q(path)}",
                 timeout=600, what="creating the venv")
        conn.run(f"{q(python)} -m pip install --upgrade {q(spec)}", timeout=3600, what=f"pip install {spec}")
        rep.add("venv", "done", f"{path}{' (system site packages)' if ssp else ''} + {spec}")
    return python


def _board_json(st: _Setup, python: str, *, service: str, camera_uri, command, run_args, collect) -> tuple[dict, bool]:
    """3. ``ROOT/board.json``, what the board-side verbs read; returns it and whether it changed."""
    conn, facts, prof, rep, board = st.conn, st.facts, st.prof, st.rep, st.board
    kind = service
    if kind == "auto":
        kind = "systemd" if facts.get("systemd") == "yes" and facts.get("sudo") in ("root", "yes") else "supervised"
    cfg = {
        "python": python,
        "profile": prof.name if prof else None,
        "camera_uri": camera_uri or (prof.camera_uri if prof else "/dev/video0"),
        "threads": prof.default_threads if prof else None,
        "service": kind,
        "unit": "edgerec",
        "command": command,
        "run_args": list(run_args or []),
        "collect": bool(collect),
    }
    cfg_path = board.path("board.json")
    old = conn.run(f"cat {q(cfg_path)} 2>/dev/null || true").stdout
    text = json.dumps(cfg, indent=2) + "\n"
    if old == text:
        rep.add("board.json", "already", cfg_path)
    elif st.dry_run:
        rep.add("board.json", "planned", cfg_path)
    else:
        conn.run(f"mkdir -p {q(board.path('run'))} {q(board.path('models'))}", what="creating folders")
        conn.put_bytes(text.encode(), cfg_path + ".tmp")
        conn.run(f"mv -f -- {q(cfg_path + '.tmp')} {q(cfg_path)}", what="writing board.json")
        rep.add("board.json", "done", cfg_path)
    return cfg, old != text


def _service(st: _Setup, cfg: dict, board_json_changed: bool) -> None:
    """4. The service: a systemd unit where systemd runs and sudo works, else the supervised process."""
    conn, rep, sudo = st.conn, st.rep, st.sudo
    if cfg["service"] != "systemd":
        rep.add("service", "planned" if st.dry_run and board_json_changed else ("done" if board_json_changed else "already"),
                "supervised process (no systemd here): pid file, log file, restart on crash")
        return
    unit = render_unit(python=cfg["python"], root=st.board.root, user=st.facts.get("user", "root"),
                       profile=cfg["profile"] or "generic", threads=cfg["threads"])
    dest = "/etc/systemd/system/edgerec.service"
    old = conn.run(f"cat {dest} 2>/dev/null || true").stdout
    if old == unit:
        rep.add("service", "already", dest)
    elif st.dry_run:
        rep.add("service", "planned", f"{dest}, systemctl enable edgerec")
    else:
        tmp = st.board.path("edgerec.service")
        conn.put_bytes(unit.encode(), tmp)
        conn.run(f"{sudo}install -m 0644 {q(tmp)} {dest} && {sudo}systemctl daemon-reload && {sudo}systemctl enable edgerec",
                 what="installing the systemd unit")
        rep.add("service", "done", f"{dest} (enabled)")


def _video_group(st: _Setup) -> None:
    """5. The user in the ``video`` group (cameras)."""
    facts, rep, sudo = st.facts, st.rep, st.sudo
    groups = facts.get("groups", "").split()
    if facts.get("uid") == "0" or "video" in groups:
        rep.add("video group", "already", "root" if facts.get("uid") == "0" else facts.get("user", ""))
    elif st.dry_run:
        rep.add("video group", "planned", f"{sudo}usermod -aG video {facts.get('user')}")
    else:
        r = st.conn.run(f"{sudo}usermod -aG video {q(facts.get('user', ''))}", check=False)
        rep.add("video group", "done" if r.ok else "failed",
                "log out and in again for it to apply" if r.ok else f"run on the board: sudo usermod -aG video {facts.get('user')}")


def parse_command(text: str | None) -> list[str] | None:
    return shlex.split(text) if text else None

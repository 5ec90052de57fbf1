"""The board side: its folder layout, the service that runs the current model, health and info.

Runs ON the board as ``python -m edgerec.devices.board ROOT COMMAND``; ``edgerec deploy`` calls it
over SSH and the systemd unit calls ``exec``. Standard library only, so it starts fast.

Layout under ROOT (``~/.edgerec`` by default)::

    board.json                       written by `edgerec device setup`: python, profile, camera, service kind
    active -> models/<name>          the model the service runs
    models/<name>/<version>/         one folder per version: edgerec.json + files + SHA256SUMS
    models/<name>/current -> <version>
    run/                             supervisor.pid, service.log, predictions.jsonl, started.json
    deploys.jsonl                    one line per deploy / rollback, with its health check
    .lock                            flock(1) target that serialises deploys

Commands: ``start``, ``stop``, ``restart``, ``state``, ``wait-healthy VERSION TIMEOUT``, ``info``, ``check FOLDER``,
``exec`` (the service's main process) and ``supervise`` (the fallback supervisor's loop).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "BOARD_CONFIG",
    "SERVICE_NAME",
    "runtime_command",
    "service_state",
    "wait_healthy",
    "board_info",
    "start",
    "stop",
    "switch",
    "activate",
    "bundle_problem",
    "main",
]

BOARD_CONFIG = "board.json"
COLLECT_DIR = "collect"  # ROOT/collect: where the service saves the frames it doubts (`device setup --collect`)
SERVICE_NAME = "edgerec"
_BACKOFF_MAX = 30.0


def load_config(root: Path) -> dict:
    path = root / BOARD_CONFIG
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `edgerec device setup` for this board first")
    return json.loads(path.read_text())


def _run_dir(root: Path) -> Path:
    d = root / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def runtime_command(root: Path, cfg: dict) -> list[str]:
    """The argument list of the runtime process for the active model."""
    bundle = (root / "active" / "current").resolve()
    values = {
        "python": cfg.get("python") or sys.executable,
        "bundle": str(bundle),
        "source": cfg.get("camera_uri") or "csi://0",
        "jsonl": str(_run_dir(root) / "predictions.jsonl"),
        "root": str(root),
        "collect": str(root / COLLECT_DIR),
    }
    template = cfg.get("command")
    if not template:
        template = ["{python}", "-m", "edgerec.cli", "run", "{bundle}", "--source", "{source}", "--jsonl", "{jsonl}",
                    "--no-status"]
        if cfg.get("profile"):
            template += ["--profile", cfg["profile"]]
        if cfg.get("collect"):  # doubt sampling into ROOT/collect, for `edgerec data pull`
            template += ["--collect", "{collect}"]
    # literal arguments: no placeholders are expanded inside them
    return [part.format(**values) for part in template] + list(cfg.get("run_args") or [])


# -- the runtime process ----------------------------------------------------------------------------
def _exec(root: Path) -> None:
    """Become the runtime process for the active model (systemd's ExecStart)."""
    argv = _prepare_start(root)
    os.execvp(argv[0], argv)


def _prepare_start(root: Path) -> list[str]:
    """Fresh predictions file and started.json for the process about to start; returns its argv."""
    cfg = load_config(root)
    current = root / "active" / "current"
    if not current.exists():
        raise SystemExit(f"no model is active under {root}: deploy one with `edgerec deploy`")
    run = _run_dir(root)
    jsonl = run / "predictions.jsonl"
    if jsonl.exists():  # a fresh file per start, so the health check only sees this process's output
        jsonl.replace(run / "predictions.prev.jsonl")
    started = {"version": current.resolve().name, "bundle": str(current.resolve()), "pid": os.getpid(), "time": time.time()}
    tmp = run / "started.json.tmp"
    tmp.write_text(json.dumps(started))
    tmp.replace(run / "started.json")
    return runtime_command(root, cfg)


# -- the supervised-process fallback (no systemd) -----------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); /proc tells the truth on Linux
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def _update_started_pid(run: Path, pid: int) -> None:
    started = json.loads((run / "started.json").read_text())
    started["pid"] = pid
    (run / "started.json.tmp").write_text(json.dumps(started))
    (run / "started.json.tmp").replace(run / "started.json")


def _supervise(root: Path) -> None:
    """Keep the runtime process alive: restart it on exit with backoff, stop it on SIGTERM."""
    run = _run_dir(root)
    log = open(run / "service.log", "ab", buffering=0)
    child: subprocess.Popen | None = None
    stopping = False

    def on_term(signum, frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    backoff = 1.0
    try:
        while not stopping:
            t0 = time.monotonic()
            log.write(f"[supervisor] {time.strftime('%Y-%m-%dT%H:%M:%S')} starting runtime\n".encode())
            try:
                argv = _prepare_start(root)
                child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            except (SystemExit, OSError) as exc:  # no model yet, or the runtime cannot start at all
                log.write(f"[supervisor] cannot start the runtime: {exc}\n".encode())
                child = None
                code = None
            else:
                (run / "child.pid").write_text(str(child.pid))
                _update_started_pid(run, child.pid)
                code = child.wait()
            if stopping:
                break
            log.write(f"[supervisor] runtime exited with {code}; restarting in {backoff:g} s\n".encode())
            backoff = 1.0 if time.monotonic() - t0 > 60 else min(backoff * 2, _BACKOFF_MAX)
            deadline = time.monotonic() + backoff
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
        for name in ("supervisor.pid", "child.pid"):
            (run / name).unlink(missing_ok=True)
        log.write(b"[supervisor] stopped\n")


def _systemctl(cfg: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = ["systemctl", *(["--user"] if cfg.get("service") == "systemd-user" else []), *args]
    if cfg.get("service") == "systemd" and os.geteuid() != 0:
        cmd = ["sudo", "-n", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True)


def start(root: Path) -> str:
    """Start the service (idempotent); returns how it runs."""
    cfg = load_config(root)
    if cfg.get("service", "supervised").startswith("systemd"):
        r = _systemctl(cfg, "restart", cfg.get("unit", SERVICE_NAME))
        if r.returncode:
            raise SystemExit(f"systemctl restart failed: {r.stderr.strip()}")
        return "systemd"
    run = _run_dir(root)
    if _read_pid(run / "supervisor.pid"):
        return "supervised (already running)"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerec.devices.board", str(root), "supervise"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the SSH session that started it
        close_fds=True,
    )
    (run / "supervisor.pid").write_text(str(proc.pid))
    return "supervised"


def stop(root: Path, timeout: float = 10.0) -> None:
    cfg = load_config(root)
    if cfg.get("service", "supervised").startswith("systemd"):
        _systemctl(cfg, "stop", cfg.get("unit", SERVICE_NAME))
        return
    run = _run_dir(root)
    pid = _read_pid(run / "supervisor.pid")
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    (run / "supervisor.pid").unlink(missing_ok=True)


def service_state(root: Path) -> dict:
    """``{"kind", "active", "pid", "running_version"}``."""
    cfg = load_config(root)
    run = root / "run"
    started = {}
    try:
        started = json.loads((run / "started.json").read_text())
    except (OSError, ValueError):
        pass
    kind = cfg.get("service", "supervised")
    if kind.startswith("systemd"):
        r = _systemctl(cfg, "is-active", cfg.get("unit", SERVICE_NAME))
        active = r.stdout.strip() == "active"
        pid = started.get("pid") if active else None
    else:
        pid = _read_pid(run / "child.pid") if _read_pid(run / "supervisor.pid") else None
        active = pid is not None
    return {"kind": kind, "active": active, "pid": pid, "running_version": started.get("version") if active else None,
            "started": started.get("time") if active else None}


def _last_prediction(jsonl: Path) -> dict | None:
    try:
        data = jsonl.read_bytes()
    except OSError:
        return None
    lines = [ln for ln in data.split(b"\n")[:-1] if ln.strip()]  # complete lines only
    for ln in reversed(lines):
        try:
            obj = json.loads(ln)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _log_tail(root: Path, n: int = 15) -> str:
    try:
        return "\n".join((root / "run" / "service.log").read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def wait_healthy(root: Path, version: str, timeout: float) -> dict:
    """Healthy = the service is active, runs ``version``, and wrote a JSON prediction within ``timeout`` s."""
    t0 = time.monotonic()
    jsonl = root / "run" / "predictions.jsonl"
    state: dict = {}
    while True:
        state = service_state(root)
        elapsed = time.monotonic() - t0
        if state["active"] and state["running_version"] == version:
            pred = _last_prediction(jsonl)
            if pred is not None and jsonl.stat().st_mtime >= (state["started"] or 0) - 1:
                return {"healthy": True, "seconds": round(elapsed, 3), "reason": "first prediction arrived",
                        "prediction": pred, "state": state}
        if elapsed > timeout:
            break
        time.sleep(0.1)
    if not state.get("active"):
        reason = "the service is not running (it exited; see the log below)"
    elif state.get("running_version") != version:
        reason = f"the service runs version {state.get('running_version')!r}, not {version!r}"
    else:
        reason = f"no prediction in {timeout:g} s (the camera may not open; run `edgerec device doctor` on the board)"
    return {"healthy": False, "seconds": round(time.monotonic() - t0, 3), "reason": reason, "state": state,
            "log_tail": _log_tail(root)}


def switch(root: Path, name: str, version: str) -> None:
    """``models/<name>/current`` -> ``version`` and ``active`` -> ``models/<name>``, each by one rename(2)."""
    import secrets

    models = root / "models" / name
    tmp = models / f".current.{secrets.token_hex(4)}"
    os.symlink(version, tmp)
    os.replace(tmp, models / "current")
    os.utime(models / version)  # "most recently activated" orders versions for rollback and pruning
    atmp = root / f".active.{secrets.token_hex(4)}"
    os.symlink(f"models/{name}", atmp)
    os.replace(atmp, root / "active")


def _restart(root: Path) -> str:
    stop(root)
    (root / "run" / "started.json").unlink(missing_ok=True)  # no stale "running version" after this point
    return start(root)


def activate(root: Path, name: str, version: str, previous: str | None, timeout: float, action: str = "deploy",
             extra: dict | None = None) -> dict:
    """Restart on ``version`` (already current), health-check it, and switch back to ``previous`` if it fails.

    All of it runs on the board, so a laptop or a link that disappears during the check cannot leave the
    board on an unhealthy version. The outcome is appended to ``deploys.jsonl``.
    """
    with _TakeOverLock(root / ".lock"):
        return _activate(root, name, version, previous, timeout, action, extra)


class _TakeOverLock:
    """Take the board lock as soon as the deploying laptop's lock goes away (its SSH link died), so that no
    other deploy can start while this activation is still checking or rolling back. With the laptop still
    connected, its lock is held throughout and this never acquires anything."""

    def __init__(self, path: Path):
        import threading

        self.path, self._done = path, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import fcntl

        with open(self.path, "a") as f:
            while not self._done.is_set():
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self._done.wait(0.05)
                    continue
                self._done.wait()  # held until the activation is over; closing the file releases it
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(5)


def _pinned(folder: Path) -> list[str] | None:
    """The one artifact a deploy profile in ``folder`` pins (``deploy --format/--precision``), else None: all."""
    from ..bench.deploy_profile import DEPLOY_PROFILE_NAME, load_deploy_profile

    if not (folder / DEPLOY_PROFILE_NAME).is_file():
        return None
    return [load_deploy_profile(folder).artifact]


def bundle_problem(folder: Path, *, self_test: bool = True) -> str | None:
    """Why the bundle in ``folder`` must not run, or None: ``verify_bundle`` (as the laptop checked it), then the
    self-test (``edgerec.runtime.selftest``): every artifact that may run here (the one a deploy profile pins, else
    each one this board has a backend for) on the bundle's check images, against the outputs recorded at export.
    The one check before a deploy switches and before an activation."""
    from ..bundle import verify_bundle  # imported here: the other board commands start without jsonschema
    from ..errors import EdgerecError

    try:
        m = verify_bundle(folder)
        if self_test:
            from ..runtime.selftest import self_test_problem

            return self_test_problem(folder, manifest=m, keys=_pinned(folder), threads=None)
    except EdgerecError as exc:  # with its fix: a bundle newer than this board's edgerec says how to upgrade it
        return exc.message + (f" (fix: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # a check that cannot run must not let an unchecked bundle start
        return f"the check itself failed: {type(exc).__name__}: {exc}"
    return None


def _activate(root: Path, name: str, version: str, previous: str | None, timeout: float, action: str,
              extra: dict | None) -> dict:
    problem = bundle_problem(root / "models" / name / version)
    if problem:  # never started: the service still runs what it ran, and the rollback below restores `current`
        health = {"healthy": False, "seconds": 0.0, "reason": f"the bundle on the board does not check out: {problem}",
                  "state": service_state(root)}
        how = "not started"
    else:
        how = _restart(root)
        health = wait_healthy(root, version, timeout)
    health["service_kind"] = how
    event = {"time": time.time(), "action": action, "name": name, "version": version, "from": previous, **(extra or {}),
             "health": {k: health.get(k) for k in ("healthy", "seconds", "reason")}}
    if not health["healthy"]:
        if previous and previous != version and (root / "models" / name / previous).is_dir():
            switch(root, name, previous)
            _restart(root)
            back = wait_healthy(root, previous, timeout)
            health["rollback"] = {"to": previous, "healthy": back["healthy"], "reason": back["reason"]}
        else:
            stop(root)
            (root / "models" / name / "current").unlink(missing_ok=True)
            health["rollback"] = {"to": None}
        event["rolled_back_to"] = health["rollback"]["to"]
    with open(root / "deploys.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")
    return health


def board_info(root: Path) -> dict:
    """Versions of the runtime and backends on this board, and the service state."""
    import importlib
    import platform

    versions = {"python": platform.python_version()}
    for mod, label in (("edgerec", "edgerec"), ("numpy", "numpy"), ("cv2", "opencv"),
                       ("ai_edge_litert", "ai-edge-litert"), ("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
        try:
            m = importlib.import_module(mod)
            versions[label] = getattr(m, "__version__", "installed")
        except Exception:  # a broken backend must not hide the others; it is reported as missing
            versions[label] = None
    try:
        cfg = load_config(root)
        state = service_state(root)
    except SystemExit as exc:
        cfg, state = {}, {"error": str(exc)}
    return {"machine": platform.machine(), "versions": versions, "service": state, "profile": cfg.get("profile")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root, cmd, rest = Path(argv[0]), argv[1], argv[2:]
    if cmd == "exec":
        _exec(root)
    elif cmd == "supervise":
        _supervise(root)
    elif cmd == "start":
        print(start(root))
    elif cmd == "stop":
        stop(root)
    elif cmd == "restart":  # restart [--wait VERSION TIMEOUT]: one SSH round trip for restart + health check
        stop(root)
        (root / "run" / "started.json").unlink(missing_ok=True)  # no stale "running version" after this point
        how = start(root)
        if rest[:1] == ["--wait"]:
            res = wait_healthy(root, rest[1], float(rest[2]))
            res["service_kind"] = how
            print(json.dumps(res))
            return 0 if res["healthy"] else 1
        print(how)
    elif cmd == "state":
        print(json.dumps(service_state(root)))
    elif cmd == "wait-healthy":
        res = wait_healthy(root, rest[0], float(rest[1]))
        print(json.dumps(res))
        return 0 if res["healthy"] else 1
    elif cmd == "activate":  # activate NAME VERSION PREVIOUS|"" TIMEOUT ACTION
        from ..errors import EdgerecError
        from .names import check_name

        try:
            for value, what in ((rest[0], "model name"), (rest[1], "version"), (rest[2] or "x", "previous version")):
                check_name(value, what)
        except EdgerecError as exc:
            print(json.dumps({"healthy": False, "reason": exc.message}))
            return 2
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # finish (and roll back if needed) even if SSH drops
        res = activate(root, rest[0], rest[1], rest[2] or None, float(rest[3]), rest[4] if len(rest) > 4 else "deploy")
        text = json.dumps(res)
        (_run_dir(root) / "last-activate.json").write_text(text)
        try:
            print(text, flush=True)
        except BrokenPipeError:  # nobody is listening any more; the result is in deploys.jsonl
            pass
        return 0 if res["healthy"] else 1
    elif cmd == "info":
        print(json.dumps(board_info(root)))
    elif cmd == "check":  # check FOLDER: a staged bundle, before the deploy moves it into place
        problem = bundle_problem(Path(rest[0]))
        print(json.dumps({"ok": problem is None, "problem": problem}))
        return 0 if problem is None else 1
    else:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

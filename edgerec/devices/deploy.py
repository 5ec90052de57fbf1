"""Deploy a bundle to a board over SSH: verify, stage, check on the board, switch, restart, health-check.

    edgerec deploy out/digits/bundle pi@kitchen.local

1. the bundle is verified locally (``verify_bundle``: schema, contract hash, every sha256) and its name and
   version checked as board folder names (``names.check_name``); a bundle that fails is never uploaded;
2. the board lock is taken (``flock``; two deploys to one board run one after the other);
3. leftovers of interrupted uploads are removed, then files go to ``models/<name>/.staging-<version>-<id>/``;
4. ``sha256sum -c`` runs ON THE BOARD over every uploaded file; a mismatch stops before anything changes;
5. the staging folder becomes ``models/<name>/<version>/`` and ``current`` is switched atomically
   (``ln -s`` to a temporary name, then ``mv -T``, a single rename(2)); every command passes ``--`` before
   names and quotes them;
   before that, the board checks the staged bundle itself (``board.bundle_problem``: the same ``verify_bundle``,
   then the self-test of every artifact it can run on the check images, against the outputs recorded at
   export); a bundle that fails is removed and ``current`` never moves;
6. the board checks the bundle again (the same function), then the service restarts and must be
   active and print its first prediction within the health timeout, otherwise the previous version is switched back and restarted, and the error says why;
7. all but the newest ``keep`` versions are removed (never the current or the previous one).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from ..bench.deploy_profile import DEPLOY_PROFILE_NAME, DeployProfile
from ..bundle import MANIFEST_NAME, bundle_path, hashed_files, sha256_file, verify_bundle
from ..errors import BundleError, ConfigError, DeployError
from .names import check_name, check_root
from .ssh import Connection, q

__all__ = [
    "DeployResult",
    "Board",
    "deploy",
    "pinned_choice",
    "rollback",
    "status",
    "check_name",
    "bundle_files",
    "DEFAULT_ROOT",
]

DEFAULT_ROOT = "~/.edgerec"
_SUMS = "SHA256SUMS"


@dataclass
class DeployResult:
    target: str
    name: str
    version: str
    ok: bool = False
    previous: str | None = None
    uploaded_bytes: int = 0
    skipped_upload: bool = False
    health: dict = field(default_factory=dict)
    rolled_back: bool = False
    error: str | None = None
    seconds: dict = field(default_factory=dict)  # phase -> seconds
    locked_at: float | None = None
    unlocked_at: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def bundle_files(root: Path, manifest) -> dict[str, str]:
    """Every file the board needs, bundle-relative, with the sha256 the manifest gives it (``verify_bundle``
    checked them all); only the check images of bundles older than ``check_images_sha256`` are hashed here."""
    files = hashed_files(manifest)
    for rel in manifest.check_images:
        if rel not in files and bundle_path(root, rel, what="check image").is_file():
            files[rel] = sha256_file(root / rel)
    files[MANIFEST_NAME] = sha256_file(root / MANIFEST_NAME)
    if (root / DEPLOY_PROFILE_NAME).is_file():  # `edgerec bench --recommend`'s choice: the board's runtime runs it
        files[DEPLOY_PROFILE_NAME] = sha256_file(root / DEPLOY_PROFILE_NAME)
    for rel in files:
        if any(c in rel for c in "\n\r\\") or rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise BundleError(f"bundle file name {rel!r} is not safe to copy", hint="rename the file and re-export")
    return files


def pinned_choice(manifest, *, format: str | None = None, precision: str | None = None, backend: str | None = None,
                  threads: int | None = None) -> DeployProfile | None:
    """The deploy profile for ``edgerec deploy --format/--precision [--backend] [--threads]``; None when format
    and precision are both auto (the board then chooses, see :func:`deploy`).

    One of format/precision alone picks by the runtime's static order (``choose_artifact``); the backend stays
    ``auto`` unless given, since which backends the board has is the board's business.
    """
    from ..runtime.backends import BACKENDS
    from ..runtime.choice import choose_artifact  # no backend is imported

    auto = (None, "auto", "")
    if format in auto and precision in auto:
        if backend not in auto or threads is not None:
            raise ConfigError("--backend and --threads pin a configuration only with --format and/or --precision",
                              hint="e.g. edgerec deploy BUNDLE HOST --precision fp32 --threads 2")
        return None
    art, _ = choose_artifact(manifest, backend="auto" if backend in auto else backend, format=format,
                             precision=precision, installed=list(BACKENDS))
    asked = " ".join(f"--{k} {v}" for k, v in (("format", format), ("precision", precision), ("backend", backend),
                                                ("threads", threads)) if v not in auto)
    return DeployProfile(artifact=art.key, artifact_format=art.format, precision=art.precision,
                         backend="auto" if backend in auto else backend, threads=threads,
                         bundle={"name": manifest.name, "version": manifest.version},
                         reason=f"set at deploy: {asked}")


class Board:
    """The remote half of a board: its paths and the shell steps on it (all quoted)."""

    def __init__(self, conn: Connection, root: str = DEFAULT_ROOT):
        self.conn = conn
        check_root(root)
        if root == "~" or root.startswith("~/"):
            home = conn.run('printf %s "$HOME"', what="finding the home folder").stdout.strip()
            root = check_root(home + root[1:], what="the board's home folder")
        # absolute from here on, so no path in a board command can start with '-'
        self.root = root.rstrip("/") or "/"
        self._config: dict | None = None

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def config(self) -> dict:
        if self._config is None:
            r = self.conn.run(f"cat {q(self.path('board.json'))}", check=False)
            if not r.ok:
                raise DeployError(
                    f"{self.conn.target}: {self.path('board.json')} is missing: this board is not set up",
                    hint=f"run: edgerec device setup {self.conn.target}",
                )
            self._config = json.loads(r.stdout)
        return self._config

    def agent_command(self, *args: str) -> str:
        # from /: `python -m` puts the working folder first on sys.path, and an exported bundle's `openvino/` or
        # `onnx/` folder (where a deploy runs its check) would shadow the library of that name
        cmd = " ".join(q(a) for a in (self.config["python"], "-m", "edgerec.devices.board", self.root, *args))
        return f"( cd / && exec {cmd} )"

    def agent(self, *args: str, check: bool = True, timeout: float = 120.0, what: str | None = None):
        """Run ``python -m edgerec.devices.board ROOT ...`` with the board's own python."""
        return self.conn.run(self.agent_command(*args), check=check, timeout=timeout, what=what or f"board {args[0]}")

    def versions(self, name: str) -> list[str]:
        """Versions present for ``name``, most recently activated first."""
        d = self.path("models", name)
        r = self.conn.run(f"cd {q(d)} 2>/dev/null && ls -1t -- . || true", what="listing versions")
        return [v for v in r.stdout.splitlines() if v and not v.startswith(".") and v != "current"]

    def current(self, name: str) -> str | None:
        r = self.conn.run(f"readlink -- {q(self.path('models', name, 'current'))} || true", what="reading current")
        return r.stdout.strip() or None

    def active_name(self) -> str | None:
        r = self.conn.run(f"readlink -- {q(self.path('active'))} || true", what="reading active")
        v = r.stdout.strip()
        return v.split("/", 1)[1] if v.startswith("models/") else None

    def switch_script(self, name: str, version: str) -> str:
        """Point ``models/<name>/current`` at ``version`` and ``active`` at ``models/<name>``, each by one rename(2)."""
        name, version = check_name(name, "model name"), check_name(version, "version")
        d = self.path("models", name)
        tmp = f".current.{secrets.token_hex(4)}"
        atmp = f".active.{secrets.token_hex(4)}"
        return (
            f"cd {q(d)} && test -d {q(version)} && ln -s -- {q(version)} {q(tmp)} && mv -T -- {q(tmp)} current && "
            f"touch -- {q(version)} && cd {q(self.root)} && ln -s -- {q('models/' + name)} {q(atmp)} && "
            f"mv -T -- {q(atmp)} active"
        )

    def switch(self, name: str, version: str) -> None:
        self.conn.run(self.switch_script(name, version), what=f"switching to {version}")

    def last_events(self, n: int = 5) -> list[dict]:
        r = self.conn.run(f"tail -n {int(n)} {q(self.path('deploys.jsonl'))} 2>/dev/null || true")
        out = []
        for ln in r.stdout.splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                continue
        return out

    def activate(self, name: str, version: str, previous: str | None, timeout: float, action: str = "deploy",
                 then: str = "") -> dict:
        """Restart, health-check and (on failure) roll back, all on the board in one command (see board.activate).

        ``then``: a shell script run right after, in the same round trip (pruning)."""
        cmd = self.agent_command("activate", name, version, previous or "", f"{timeout:g}", action)
        if then:
            cmd = f"{cmd}; rc=$?; ( {then} ) >/dev/null 2>&1; exit $rc"
        r = self.conn.run(cmd, check=False, timeout=2 * timeout + 120, what="health check")
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"healthy": False, "reason": f"health check did not answer: {r.stderr.strip()[-300:]}"}


def _check_text(out: str) -> str:
    """The board's ``check`` answer (a JSON line after any log output) as the reason."""
    for line in reversed(out.strip().splitlines()):
        try:
            return json.loads(line).get("problem") or line
        except ValueError:
            continue
    return out.strip()[-500:] or "the board's check failed without a reason"


def _remote_verify(board: Board, folder: str) -> str | None:
    """Run sha256sum -c on the board; returns the failure text or None."""
    r = board.conn.run(f"cd {q(folder)} && sha256sum -c --quiet -- {_SUMS}", check=False, what="verifying on the board")
    if r.ok:
        return None
    return (r.stdout + r.stderr).strip() or f"sha256sum exited {r.exit_status}"


def deploy(
    conn: Connection,
    bundle: str | Path,
    *,
    root: str = DEFAULT_ROOT,
    service: bool = True,
    health_timeout: float = 30.0,
    keep: int = 3,
    lock_wait: float = 300.0,
    progress: Callable[[int, int], None] | None = None,
    force_upload: bool = False,
    format: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
) -> DeployResult:
    """Deploy ``bundle`` to the board behind ``conn``; raises ``DeployError`` (after rolling back) on failure.

    Which artifact the board runs: with ``format``/``precision`` (and optionally ``backend``, ``threads``) a
    deploy profile naming it goes up as the version's ``deploy-profile.yaml`` (:func:`pinned_choice`); with
    both auto (None) the bundle's own ``deploy-profile.yaml`` does, when it has one; else the board's runtime
    chooses (``edgerec.runtime.choice``: its bench results, its device profile, or a few timed calls).

    >>> with connect(Target.parse("pi@kitchen.local")) as c:        # doctest: +SKIP
    ...     deploy(c, "out/digits/bundle").health["seconds"]
    """
    t_all = time.perf_counter()
    bundle = Path(bundle)
    manifest = verify_bundle(bundle)  # never upload a bundle that does not check out
    name, version = check_name(manifest.name, "bundle name"), check_name(manifest.version, "version")
    files = bundle_files(bundle, manifest)
    choice = pinned_choice(manifest, format=format, precision=precision, backend=backend, threads=threads)
    extra: dict[str, bytes] = {}
    if choice is not None:
        from ..bench.deploy_profile import dump_deploy_profile

        extra[DEPLOY_PROFILE_NAME] = dump_deploy_profile(choice).encode()
        files[DEPLOY_PROFILE_NAME] = hashlib.sha256(extra[DEPLOY_PROFILE_NAME]).hexdigest()
    res = DeployResult(str(conn.target), name, version)
    res.seconds["verify_local"] = round(time.perf_counter() - t_all, 3)

    board = Board(conn, root)
    t = time.perf_counter()
    with conn.lock(board.path(".lock"), wait=lock_wait) as lock:
        res.locked_at = lock.acquired_at
        res.seconds["lock"] = round(time.perf_counter() - t, 3)
        try:
            _deploy_locked(board, bundle, files, res, service=service, health_timeout=health_timeout,
                           keep=keep, progress=progress, force_upload=force_upload, extra=extra)
        finally:
            res.unlocked_at = time.time()
    res.seconds["total"] = round(time.perf_counter() - t_all, 3)
    return res


def _deploy_locked(board: Board, bundle: Path, files: dict[str, str], res: DeployResult, *, service: bool,
                   health_timeout: float, keep: int, progress, force_upload: bool,
                   extra: dict[str, bytes] | None = None) -> None:
    extra = extra or {}  # files made here (the pinned deploy profile), uploaded from memory
    # Few round trips: each SSH command costs a fork of sshd and a shell on the board.
    name, version = res.name, res.version
    final = board.path("models", name, version)
    staging = board.path("models", name, f".staging-{version}-{secrets.token_hex(4)}")
    sums = "".join(f"{digest}  {rel}\n" for rel, digest in files.items())
    _prepare_board(board, files, res, sums=sums, final=final, staging=staging, service=service,
                   force_upload=force_upload)
    if not res.skipped_upload:
        t = time.perf_counter()
        res.uploaded_bytes = _upload(board.conn, bundle, files, extra, staging, progress)
        board.conn.put_bytes(sums.encode(), f"{staging}/{_SUMS}")
        res.seconds["upload"] = round(time.perf_counter() - t, 3)
        _verify_and_switch(board, res, staging=staging, final=final)
    else:
        t = time.perf_counter()
        board.switch(name, version)
        res.seconds["switch"] = round(time.perf_counter() - t, 3)
    _activate(board, res, service=service, health_timeout=health_timeout, keep=keep)
    res.ok = True


def _prepare_board(board: Board, files: dict[str, str], res: DeployResult, *, sums: str, final: str, staging: str,
                   service: bool, force_upload: bool) -> None:
    """One command: clear leftovers, read the previous version and the board config, find out whether this exact
    version is already there (``res.skipped_upload``), else create the staging folders."""
    conn, models = board.conn, board.path("models", res.name)
    dirs = sorted({str(PurePosixPath(rel).parent) for rel in files if str(PurePosixPath(rel).parent) != "."})
    t = time.perf_counter()
    # leftovers of interrupted deploys (any model) are removed, and only ever under the lock
    prep = (
        f"mkdir -p {q(models)} && rm -rf -- {q(board.path('models'))}/*/.staging-* {q(models)}/.current.* "
        f"{q(models)}/.trash-* {q(board.root)}/.active.* || exit 1\n"
        f"printf 'previous=%s\\n' \"$(readlink -- {q(models + '/current')})\"\n"
        f"if [ -f {q(board.path('board.json'))} ]; then printf 'config=%s\\n' \"$(tr -d '\\n' < {q(board.path('board.json'))})\"; "
        f"else echo config=; {'exit 0' if service else ':'}; fi\n"
    )
    if not force_upload:  # this exact version already on the board and intact: no upload
        prep += (f"if printf %s {q(sums)} | cmp -s - {q(final + '/' + _SUMS)} && "
                 f"(cd {q(final)} && sha256sum -c --quiet -- {_SUMS} >/dev/null 2>&1); then echo present=yes; exit 0; fi\n")
    prep += f"mkdir -p {q(staging)}" + "".join(f" {q(staging + '/' + d)}" for d in dirs) + "\n"
    facts = dict(ln.split("=", 1) for ln in conn.run(prep, what="preparing the upload").stdout.splitlines() if "=" in ln)
    res.previous = facts.get("previous") or None
    res.skipped_upload = facts.get("present") == "yes"
    if facts.get("config"):
        board._config = json.loads(facts["config"])
    elif service:
        board.config  # raises "not set up" with the fix; nothing was uploaded
    res.seconds["prepare"] = round(time.perf_counter() - t, 3)


def _upload(conn: Connection, bundle: Path, files: dict[str, str], extra: dict[str, bytes], staging: str,
            progress) -> int:
    """Every file into ``staging`` (those in ``extra`` from memory), reporting ``progress``; returns the bytes sent."""
    total = sum(len(extra[rel]) if rel in extra else (bundle / rel).stat().st_size for rel in files)
    done = 0
    for rel in files:
        def cb(sent, _size, _base=done):
            if progress:
                progress(_base + sent, total)

        if rel in extra:
            conn.put_bytes(extra[rel], f"{staging}/{rel}")
            done += len(extra[rel])
            continue
        conn.put(bundle / rel, f"{staging}/{rel}", callback=cb)
        done += (bundle / rel).stat().st_size
    return done


def _verify_and_switch(board: Board, res: DeployResult, *, staging: str, final: str) -> None:
    """On the board: check the staged files' hashes and the bundle itself, move it to ``final`` and switch
    ``current`` to it; a bundle that fails is removed and nothing is switched (``DeployError`` says why)."""
    conn, name, version = board.conn, res.name, res.version
    t = time.perf_counter()
    trash = board.path("models", name, f".trash-{secrets.token_hex(4)}")
    # sha256 over every file, then the board's own check (hashes and the self-test on the check images):
    # a bundle that fails either is removed and `current` never moves
    commit = (
        f"cd {q(staging)} && out=$(sha256sum -c --quiet -- {_SUMS} 2>&1) || "
        f"{{ cd / && rm -rf -- {q(staging)}; printf 'BADSUM %s\\n' \"$out\"; exit 3; }}\n"
        f"out=$( {board.agent_command('check', staging)} 2>&1) || "
        f"{{ cd / && rm -rf -- {q(staging)}; printf 'BADCHECK %s\\n' \"$out\"; exit 4; }}\n"
        f"cd / && if [ -e {q(final)} ]; then mv -T -- {q(final)} {q(trash)}; fi && "
        f"mv -T -- {q(staging)} {q(final)} && rm -rf -- {q(trash)}\n"
    )
    r = conn.run(commit + board.switch_script(name, version), check=False, what="verifying on the board")
    res.seconds["verify_switch"] = round(time.perf_counter() - t, 3)
    if "BADSUM" in r.stdout:
        bad = r.stdout.split("BADSUM", 1)[1].strip() or f"sha256sum exited {r.exit_status}"
        raise DeployError(
            f"{conn.target}: sha256 check ON THE BOARD failed, nothing was switched: {bad.splitlines()[0]}",
            hint="the upload was corrupted in transit; deploy again (check the link / SD card if it repeats)",
        )
    if "BADCHECK" in r.stdout:
        raise DeployError(f"{conn.target}: the board refused {name} {version}, nothing was switched: "
                          f"{_check_text(r.stdout.split('BADCHECK', 1)[1])}",
                          hint="the bundle does not answer on the board as it did at export; `edgerec bundle verify "
                               "--run BUNDLE` on the board shows each artifact's numbers")
    if not r.ok:
        raise DeployError(f"{conn.target}: switching to {version} failed: {(r.stderr or r.stdout).strip()[-300:]}")


def _activate(board: Board, res: DeployResult, *, service: bool, health_timeout: float, keep: int) -> None:
    """With the service: restart it and check its health (the board rolls back and logs the deploy itself);
    without: log the deploy. Then prune old versions either way."""
    conn, name, version = board.conn, res.name, res.version
    if service:
        t = time.perf_counter()
        res.health = board.activate(name, version, res.previous, health_timeout,
                                    then=_prune_script(board, name, keep, {version, res.previous}))
        res.seconds["health"] = round(time.perf_counter() - t, 3)
        if not res.health.get("healthy"):
            res.rolled_back = True
            raise DeployError(
                f"{conn.target}: health check failed for {name} {version}: {res.health.get('reason')}; "
                f"{_rollback_text(res.health)}" + _log_text(res.health),
                hint="fix the model or the board (edgerec device doctor) and deploy again",
            )
    else:
        event = {"time": time.time(), "action": "deploy", "name": name, "version": version, "from": res.previous}
        t = time.perf_counter()
        log = f"printf '%s\\n' {q(json.dumps(event))} >> {q(board.path('deploys.jsonl'))}"
        conn.run(f"{log} && {_prune_script(board, name, keep, {version, res.previous})}", what="pruning old versions")
        res.seconds["log_prune"] = round(time.perf_counter() - t, 3)


def _rollback_text(health: dict) -> str:
    if "rollback" not in health:
        return "the board's answer was lost; see `edgerec status` for what it did"
    rb = health["rollback"]
    if rb.get("to") is None:
        return "there was no previous version to roll back to; the service is stopped"
    state = "and it is healthy" if rb.get("healthy") else f"but it is not healthy either: {rb.get('reason')}"
    return f"rolled back to {rb['to']} {state}"


def _log_text(health: dict) -> str:
    tail = health.get("log_tail", "")
    return f"\n--- service log (tail) ---\n{tail}" if tail else ""


def _prune_script(board: Board, name: str, keep: int, protect: set) -> str:
    """Remove all but the ``keep`` most recently activated versions, never those in ``protect``."""
    keep_list = " ".join(q(v) for v in sorted(v for v in protect if v))
    return (
        f"cd {q(board.path('models', name))} && "
        f"n=0; ls -1t -- . | while IFS= read -r v; do case $v in .*|current) continue;; esac; n=$((n+1)); "
        f"[ $n -le {max(int(keep), 1)} ] && continue; for k in {keep_list}; do [ \"$v\" = \"$k\" ] && continue 2; done; "
        f"rm -rf -- \"./$v\"; done"
    )


def rollback(conn: Connection, *, root: str = DEFAULT_ROOT, to: str | None = None, name: str | None = None,
             health_timeout: float = 30.0, lock_wait: float = 300.0) -> DeployResult:
    """Switch the active model back to ``to`` (default: the version active before the current one)."""
    # validated before anything runs on the board: `--name ../..` must not become a path there
    if name is not None:
        check_name(name, "--name", error=ConfigError)
    if to is not None:
        check_name(to, "--to", error=ConfigError)
    board = Board(conn, root)
    name = name or board.active_name()
    if not name:
        raise DeployError(f"{conn.target}: no model is active on this board", hint="deploy one with `edgerec deploy`")
    check_name(name, "active model name", error=DeployError)
    with conn.lock(board.path(".lock"), wait=lock_wait):
        current = board.current(name)
        versions = board.versions(name)
        if to is None:
            older = [v for v in versions if v != current]
            if not older:
                raise DeployError(f"{conn.target}: {name} has no other version to roll back to (only {current})")
            to = older[0]
        elif to not in versions:
            raise DeployError(f"{conn.target}: version {to!r} of {name} is not on the board",
                              hint=f"present: {', '.join(versions) or 'none'}")
        res = DeployResult(str(conn.target), name, to, previous=current)
        if _remote_verify(board, board.path("models", name, to)):
            raise DeployError(f"{conn.target}: {name} {to} on the board no longer matches its hashes",
                              hint="deploy that bundle again instead")
        board.switch(name, to)
        res.health = board.activate(name, to, current, health_timeout, action="rollback")
        if not res.health.get("healthy"):
            raise DeployError(f"{conn.target}: {name} {to} is not healthy: {res.health.get('reason')}; "
                              f"{_rollback_text(res.health)}" + _log_text(res.health),
                              hint="see the service log: edgerec status " + str(conn.target))
        res.ok = True
        return res


def status(conn: Connection, *, root: str = DEFAULT_ROOT) -> dict:
    """Versions present per model, which is current and active, service state, last health check, versions."""
    board = Board(conn, root)
    out: dict = {"target": str(conn.target), "root": board.root}
    r = conn.run(f"ls -1 {q(board.path('models'))} 2>/dev/null || true")
    models = {}
    for name in r.stdout.splitlines():
        if name and not name.startswith("."):
            models[name] = {"versions": board.versions(name), "current": board.current(name)}
    out["models"] = models
    out["active"] = board.active_name()
    events = board.last_events(20)
    out["last_deploy"] = events[-1] if events else None
    checks = [e for e in events if e.get("health")]
    out["last_health_check"] = checks[-1] if checks else None
    try:
        info = json.loads(board.agent("info", what="reading board info").stdout)
    except DeployError as exc:
        info = {"error": exc.message}
    out.update(info)
    return out

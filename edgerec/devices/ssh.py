"""One SSH connection to a board (paramiko): host-key checking, commands, uploads, the board lock.

Every remote command is a POSIX ``sh -c`` script whose names and paths went through
``shlex.quote``; nothing from a bundle, an inventory or a flag reaches a shell unquoted.

>>> with connect(Target.parse("pi@kitchen.local")) as board:    # doctest: +SKIP
...     print(board.run("uname -m").stdout)
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DeployError, require

__all__ = ["Target", "Result", "Connection", "LocalConnection", "connect", "q"]

q = shlex.quote

_TARGET = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s\[\]]+)(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class Target:
    """``user@host[:port]`` (IPv6 as ``[::1]:2222``)."""

    host: str
    user: str | None = None
    port: int = 22

    @classmethod
    def parse(cls, text: str, *, port: int | None = None) -> "Target":
        m = _TARGET.match(text.strip())
        if not m:
            raise ConfigError(f"'{text}' is not a board address", hint="write user@host or user@host:port, e.g. pi@192.168.1.20:22")
        p = int(m["port"]) if m["port"] else (port or 22)
        if not 0 < p < 65536:
            raise ConfigError(f"'{text}': port {p} is out of range 1..65535")
        return cls(host=m["host"].strip("[]"), user=m["user"], port=p)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}" + (f":{self.port}" if self.port != 22 else "")


@dataclass(frozen=True)
class Result:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Connection:
    """An open SSH session to one board; use ``connect()`` and close it (it is a context manager)."""

    def __init__(self, client, target: Target):
        self._client = client
        self.target = target
        self._sftp = None

    # -- commands ---------------------------------------------------------------------------------
    def run(self, script: str, *, check: bool = True, timeout: float = 120.0, what: str | None = None) -> Result:
        """Run a POSIX shell script (already quoted) on the board; ``check`` raises ``DeployError`` on failure."""
        command = f"sh -c {q(script)}"
        try:
            _, out, err = self._client.exec_command(command, timeout=timeout)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
            status = out.channel.recv_exit_status()
        except (OSError, EOFError, socket.timeout) as exc:
            raise self._lost(exc, what or "running a command") from exc
        except Exception as exc:  # paramiko.SSHException: channel closed under us
            if type(exc).__module__.startswith("paramiko"):
                raise self._lost(exc, what or "running a command") from exc
            raise
        if status == -1:  # the channel closed without an exit status: the link or sshd went away
            raise self._lost(EOFError("no exit status"), what or "running a command")
        res = Result(script, status, stdout, stderr)
        if check and not res.ok:
            detail = (stderr.strip() or stdout.strip() or f"exit status {status}").splitlines()[-5:]
            raise DeployError(f"{self.target}: {what or 'remote command'} failed: " + " | ".join(detail))
        return res

    def _lost(self, exc: BaseException, what: str) -> DeployError:
        return DeployError(
            f"{self.target}: connection lost while {what} ({type(exc).__name__}: {exc})",
            hint="check the network and run the same command again; the board keeps its previous model",
        )

    # -- files ------------------------------------------------------------------------------------
    @property
    def sftp(self):
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def _transfer(self, what: str, call: Callable[[], object]) -> None:
        """Run one SFTP ``call``; a dropped link (OSError, EOFError or any paramiko error) becomes ``_lost``."""
        try:
            call()
        except FileNotFoundError:
            raise
        except (OSError, EOFError) as exc:
            raise self._lost(exc, what) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("paramiko"):
                raise self._lost(exc, what) from exc
            raise

    def put(self, local: Path, remote: str, callback: Callable[[int, int], None] | None = None) -> None:
        """Upload one file to an absolute remote path."""
        self._transfer(f"uploading {Path(local).name}",
                       lambda: self.sftp.put(str(local), remote, callback=callback, confirm=True))

    def get(self, remote: str, local: Path) -> None:
        """Download one file from an absolute remote path."""
        try:
            self._transfer(f"downloading {remote}", lambda: self.sftp.get(remote, str(local)))
        except FileNotFoundError as exc:
            raise DeployError(f"{self.target}: {remote} is gone (deleted while copying?)") from exc

    def put_bytes(self, data: bytes, remote: str) -> None:
        import io

        try:
            self.sftp.putfo(io.BytesIO(data), remote)
        except (OSError, EOFError) as exc:
            raise self._lost(exc, f"writing {remote}") from exc

    # -- the board lock ---------------------------------------------------------------------------
    def lock(self, path: str, *, wait: float = 120.0) -> "BoardLock":
        """Take ``flock(1)`` on ``path`` for as long as the returned lock is open.

        The lock is held by a remote ``flock ... cat`` that lives exactly as long as this channel:
        when the laptop, the network or sshd dies, the kernel releases it, so it can never go stale.
        """
        lock = BoardLock(self, path, wait)
        lock.acquire()
        return lock

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # closing a dead channel; the client close below is what matters
                pass
        self._client.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalConnection:
    """The same ``run``/``put``/``put_bytes`` on this machine, for ``edgerec device setup --local`` on the board itself."""

    target = Target("localhost")

    def run(self, script: str, *, check: bool = True, timeout: float = 120.0, what: str | None = None) -> Result:
        import subprocess

        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout)
        res = Result(script, r.returncode, r.stdout, r.stderr)
        if check and not res.ok:
            detail = (r.stderr.strip() or r.stdout.strip() or f"exit status {r.returncode}").splitlines()[-5:]
            raise DeployError(f"localhost: {what or 'command'} failed: " + " | ".join(detail))
        return res

    def put(self, local: Path, remote: str, callback=None) -> None:
        import shutil

        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        import shutil

        shutil.copyfile(remote, local)

    def put_bytes(self, data: bytes, remote: str) -> None:
        Path(remote).write_bytes(data)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalConnection":
        return self

    def __exit__(self, *exc) -> None:
        pass


class BoardLock:
    def __init__(self, conn: Connection, path: str, wait: float):
        self.conn, self.path, self.wait = conn, path, wait
        self._chan = None
        self.acquired_at: float | None = None

    def acquire(self) -> None:
        parent = self.path.rsplit("/", 1)[0] or "/"
        script = (
            f"mkdir -p {q(parent)} && exec flock -w {self.wait:g} {q(self.path)} "
            f"sh -c 'echo locked; exec cat >/dev/null'"
        )
        try:
            chan = self.conn._client.get_transport().open_session()
            chan.exec_command(f"sh -c {q(script)}")
            line = chan.makefile("r").readline().strip()
        except Exception as exc:
            if isinstance(exc, (OSError, EOFError)) or type(exc).__module__.startswith("paramiko"):
                raise self.conn._lost(exc, "taking the board lock") from exc
            raise
        if line != "locked":
            err = chan.makefile_stderr("r").read().decode(errors="replace").strip() if chan.exit_status_ready() else ""
            chan.close()
            raise DeployError(
                f"{self.conn.target}: the board is busy: another deploy holds {self.path} (waited {self.wait:g} s)"
                + (f": {err}" if err else ""),
                hint="wait for the other deploy to finish, or raise --lock-wait",
            )
        self._chan = chan
        self.acquired_at = time.time()

    def release(self) -> None:
        if self._chan is not None:
            try:
                self._chan.shutdown_write()  # cat sees EOF, flock exits, the lock is gone
                self._chan.recv_exit_status()
                self._chan.close()
            except (OSError, EOFError, Exception):  # the connection is already gone: so is the lock
                pass
            self._chan = None

    def __enter__(self) -> "BoardLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _load_known_hosts(keys, path: Path) -> set[str]:
    """Add the known_hosts entries paramiko understands to ``keys``; return the @revoked keys (base64).

    Read line by line (not ``load_host_keys``): paramiko stops at ``@cert-authority``/``@revoked`` lines, and
    would rewrite the whole file when a key is added, dropping the user's comments and markers.
    """
    from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

    revoked = set()
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            parts = line.split()
            if parts[0] == "@revoked" and len(parts) >= 4:
                revoked.add(parts[3])
            continue  # @cert-authority: host certificates are not supported; such hosts need a plain key line
        try:
            entry = HostKeyEntry.from_line(line)
        except (InvalidHostKey, ValueError):
            continue  # a key type this paramiko cannot read must not hide the others
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return revoked


def connect(
    target: Target,
    *,
    identity: str | Path | None = None,
    known_hosts: str | Path | None = None,
    insecure_accept_new: bool = False,
    timeout: float = 15.0,
) -> Connection:
    """Open an SSH connection, checking the board's host key against ``known_hosts``.

    ``known_hosts`` defaults to ``~/.ssh/known_hosts``. An unknown host is refused unless
    ``insecure_accept_new`` (then its key is recorded there); a changed key is always refused.
    ``identity`` must be a key file that exists (``ConfigError`` otherwise, before any network traffic).
    """
    _check_identity(identity)
    paramiko = require("paramiko", "deploy", purpose="deploying over SSH")

    kh = Path(known_hosts).expanduser() if known_hosts else Path("~/.ssh/known_hosts").expanduser()
    client = paramiko.SSHClient()
    revoked = _load_known_hosts(client.get_host_keys(), kh) if kh.is_file() else set()
    new_keys = _set_host_key_policy(paramiko, client, insecure_accept_new)
    host, user, port, key = _resolve_address(paramiko, target, identity)
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=str(Path(key).expanduser()) if key else None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise _connect_error(paramiko, exc, target, kh, host=host, port=port, user=user, key=key) from exc
    server_key = client.get_transport().get_remote_server_key()
    if server_key.get_base64() in revoked:
        client.close()
        raise DeployError(f"{target}: the board's host key is marked @revoked in {kh}; refusing to connect",
                          hint="the key was revoked on purpose: re-key the board and update known_hosts")
    if new_keys:
        _record_new_keys(kh, new_keys)
    return Connection(client, target)


def _check_identity(identity: str | Path | None) -> None:
    """``ConfigError`` when ``identity`` is given but is not a file."""
    if identity is not None and not Path(identity).expanduser().is_file():
        raise ConfigError(f"identity file {identity} does not exist" if not Path(identity).expanduser().exists()
                          else f"identity {identity} is not a file",
                          hint="pass the private key file (e.g. --identity ~/.ssh/id_ed25519), or leave --identity out "
                               "to use the ssh agent and ~/.ssh keys")


def _set_host_key_policy(paramiko, client, insecure_accept_new: bool) -> list[tuple[str, object]]:
    """Refuse unknown hosts, or with ``insecure_accept_new`` accept them; returns the list the accepted keys go to."""
    new_keys: list[tuple[str, object]] = []
    if insecure_accept_new:
        class _Record(paramiko.MissingHostKeyPolicy):
            def missing_host_key(self, client, hostname, key):
                new_keys.append((hostname, key))

        client.set_missing_host_key_policy(_Record())
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return new_keys


def _resolve_address(paramiko, target: Target, identity) -> tuple[str, str, int, str | Path | None]:
    """``(host, user, port, key)`` for ``target``, with ``~/.ssh/config`` applied and the local user by default."""
    host, user, port, key = target.host, target.user, target.port, identity
    cfg_path = Path("~/.ssh/config").expanduser()
    if cfg_path.is_file():  # honour Host aliases, HostName, User, Port, IdentityFile
        cfg = paramiko.SSHConfig.from_path(str(cfg_path)).lookup(target.host)
        host = cfg.get("hostname", host)
        user = user or cfg.get("user")
        if target.port == 22 and cfg.get("port"):
            port = int(cfg["port"])
        if key is None and cfg.get("identityfile"):
            # like ssh: an IdentityFile of ~/.ssh/config that does not exist is skipped, not an error
            key = next((k for k in cfg["identityfile"] if Path(k).expanduser().is_file()), None)
    import getpass

    return host, user or getpass.getuser(), port, key


def _connect_error(paramiko, exc: BaseException, target: Target, kh: Path, *, host: str, port: int, user: str,
                   key) -> ConfigError | DeployError:
    """The error that says why ``client.connect`` failed and how to fix it."""
    if isinstance(exc, paramiko.BadHostKeyException):
        keyname = f"[{host}]:{port}" if port != 22 else host
        return DeployError(
            f"{target}: the board's host key CHANGED (got {exc.key.get_name()} "
            f"{exc.key.get_fingerprint().hex()[:16]}…, known_hosts in {kh} says otherwise); refusing to connect",
            hint=f"if the board was reinstalled, remove the old key: ssh-keygen -R '{keyname}' -f {kh}; "
            "otherwise someone may be intercepting the connection",
        )
    if isinstance(exc, paramiko.SSHException):
        if "not found in known_hosts" in str(exc):
            return DeployError(
                f"{target}: host key unknown (not in {kh}); refusing to connect",
                hint=f"check the fingerprint and add it (ssh-keyscan -p {port} {host} >> {kh}), "
                "or pass --insecure-accept-new to trust it on first use",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return DeployError(
                f"{target}: SSH authentication failed as '{user}'",
                hint="copy your key to the board (ssh-copy-id) or pass --identity KEYFILE",
            )
        return DeployError(f"{target}: SSH failed: {exc}")
    if key and getattr(exc, "filename", None) and Path(exc.filename) == Path(key).expanduser():
        return ConfigError(f"cannot read the identity file {key} ({exc.strerror or exc})",
                           hint="check the key file's path and permissions")
    return DeployError(
        f"{target}: cannot reach {host}:{port} ({exc.strerror or exc})",
        hint="is the board on, on this network, and running sshd?",
    )


def _record_new_keys(kh: Path, new_keys: list[tuple[str, object]]) -> None:
    """Trust on first use: append exactly one line per new key to ``kh``, as ssh's accept-new does."""
    kh.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(kh, "a") as f:
        os.chmod(kh, 0o600)
        for hostname, key in new_keys:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

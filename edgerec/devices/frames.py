"""Bring the frames boards collected home over SSH: ``edgerec data pull``.

    edgerec data pull pi@kitchen.local field/                 # ROOT/collect (the service's --collect folder)
    edgerec data pull --inventory hosts.yaml field/           # every board, 4 at once
    edgerec data pull pi@kitchen.local data/ --remote ~/data --merge   # `edgerec capture` class folders

Each board's files land in ``DIR/<board>/`` (its inventory name, else its address), keeping the remote folder's
layout; with ``merge`` they land in ``DIR/`` itself, so class folders captured on several boards make one
ImageFolder. A file is

- **new** when it is not named in the board's ``.pulled`` (the list ``run --collect`` evicts first when it needs
  room; every verified file is appended to it, in batches, so an interrupted pull resumes where it stopped);
- **complete** when it has not changed for ``settle`` seconds and, for a collected frame, its sidecar JSON (written
  last) is there;
- **verified** when the bytes written here have the sha256 the board computed; otherwise it is dropped and left
  for the next pull;
- **a duplicate** when the same bytes were pulled before, from this board or another (``DIR/.pull-index.jsonl``
  remembers the sha256 of everything pulled): it is marked pulled on the board but not copied again.

Nothing here is ever overwritten: a local file of that name with other bytes is a conflict, reported and left on
the board (not marked pulled). Hidden files (``.pulled``, capture indexes) are never copied.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..bundle import sha256_file
from ..errors import DeployError, EdgerecError
from .board import COLLECT_DIR
from .deploy import DEFAULT_ROOT, Board
from .names import check_root
from .ssh import q

__all__ = ["PullResult", "PullIndex", "pull_frames", "pull_frames_inventory", "board_folder", "INDEX_NAME",
           "PULLED_NAME"]

INDEX_NAME = ".pull-index.jsonl"
PULLED_NAME = ".pulled"  # the same name edgerec.capture.doubt reads (that module needs OpenCV; this one must not)
_BATCH = 25  # files verified between two appends to the board's .pulled

# Runs on the board with its python3 (standard library only): the folder's files as JSON, the sha256 of each
# file not yet pulled, and which frame groups are complete. argv: folder, settle seconds.
_LIST_SCRIPT = r"""
import hashlib, json, os, sys, time
top, settle = sys.argv[1], float(sys.argv[2])
if not os.path.isdir(top):
    print(json.dumps({"missing": True})); sys.exit(0)
try:
    pulled = set(open(os.path.join(top, ".pulled"), errors="replace").read().split())
except OSError:
    pulled = set()
now, files = time.time(), []
for d, dirs, names in os.walk(top):
    dirs[:] = sorted(x for x in dirs if not x.startswith("."))
    for n in sorted(names):
        if n.startswith(".") or ".part-" in n:
            continue
        p = os.path.join(d, n)
        rel = os.path.relpath(p, top)
        try:
            st = os.stat(p)
        except OSError:
            continue
        entry = {"path": rel, "size": st.st_size, "age": now - st.st_mtime, "pulled": rel in pulled}
        if not entry["pulled"] and entry["age"] >= settle:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for b in iter(lambda: f.read(1 << 16), b""):
                    h.update(b)
            entry["sha256"] = h.hexdigest()
        files.append(entry)
print(json.dumps({"missing": False, "files": files}))
"""


@dataclass
class PullResult:
    board: str
    remote: str = ""
    folder: str = ""  # where this board's files went
    ok: bool = False
    listed: int = 0  # files in the remote folder (hidden ones aside)
    copied: int = 0
    bytes: int = 0
    already: int = 0  # pulled before (in .pulled, or here with the same bytes)
    duplicates: int = 0  # the same bytes came from another file or board earlier: not copied again
    pending: int = 0  # not complete yet (still being written, or a frame whose sidecar is missing)
    changed: int = 0  # changed between listing and copying: left for the next pull
    conflicts: list[str] = field(default_factory=list)  # a local file of that name holds other bytes
    marked: int = 0  # names appended to the board's .pulled this time
    seconds: float = 0.0
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        if not self.ok:
            return f"{self.board}: FAILED: {self.error}"
        text = (f"{self.board}: {self.copied} new files ({self.bytes / 1e6:.2f} MB) into {self.folder}; "
                f"{self.already} pulled before, {self.duplicates} duplicates, {self.pending} not complete yet")
        if self.changed:
            text += f", {self.changed} changed while copying (next pull)"
        if self.conflicts:
            text += f", {len(self.conflicts)} name conflicts left on the board ({', '.join(self.conflicts[:3])})"
        return text


class PullIndex:
    """``DIR/.pull-index.jsonl``: the sha256 of every file pulled into ``DIR``, from every board (thread-safe)."""

    def __init__(self, folder: Path):
        self.path = folder / INDEX_NAME
        self._lock = threading.Lock()
        self.by_sha: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                    self.by_sha.setdefault(rec["sha256"], rec)
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a crash: the file it named is re-checked by its bytes next time

    def get(self, sha: str) -> dict | None:
        with self._lock:
            return self.by_sha.get(sha)

    def add(self, rec: dict) -> None:
        with self._lock:
            self.by_sha.setdefault(rec["sha256"], rec)
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


def board_folder(label: str) -> str:
    """A board's inventory name or address as one safe folder name (``pi@10.0.0.7:2222`` -> ``pi_10.0.0.7_2222``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "board"
    return name[:80]


def _safe_rel(rel: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or any(c in rel for c in "\n\r\\"):
        raise DeployError(f"the board listed a file name that is not safe to copy: {rel!r}")
    return p


def _complete(files: list[dict]) -> set[str]:
    """Paths whose frame group is complete: a ``<stem>.*`` group that has a ``<stem>.json`` sidecar (written last by
    ``run --collect``) is complete once the sidecar is; a file with no sidecar in its group stands alone."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for f in files:
        parent, _, name = f["path"].rpartition("/")
        groups.setdefault((parent, name.split(".", 1)[0]), []).append(f)
    ready = set()
    for (parent, stem), members in groups.items():
        names = {m["path"].rpartition("/")[2] for m in members}
        sidecar = f"{stem}.json"
        for m in members:
            if "sha256" not in m:
                continue
            if len(members) > 1 and sidecar not in names:
                continue  # a collected frame whose sidecar is not written yet
            ready.add(m["path"])
    return ready


def pull_frames(conn, dest: str | Path, *, board: str | None = None, remote: str | None = None,
                root: str = DEFAULT_ROOT, merge: bool = False, settle: float = 5.0, index: PullIndex | None = None,
                progress: Callable[[int, int], None] | None = None) -> PullResult:
    """Copy the new, complete files of ``remote`` (default ``ROOT/collect``) on the board behind ``conn`` into
    ``dest/<board>/`` (``dest/`` with ``merge``); verify each by sha256 and mark it pulled on the board.

    ``progress(done_bytes, total_bytes)`` is called as files arrive. Returns a :class:`PullResult`; raises
    ``DeployError`` when the board cannot be listed (the connection, or no ``python3`` on it).
    """
    t0 = time.perf_counter()
    dest = Path(dest)
    label = board or str(conn.target)
    if remote is None:
        remote = Board(conn, root).path(COLLECT_DIR)  # where `device setup --collect` points the service
    else:
        check_root(remote, what="--remote")  # worded for this flag, before Board checks it as a root
        remote = Board(conn, remote).root  # "~" resolved on the board
    res = PullResult(label, remote)
    out = dest if merge else dest / board_folder(label)
    res.folder = str(out)
    dest.mkdir(parents=True, exist_ok=True)
    index = index or PullIndex(dest)
    listing = _list(conn, remote, settle)
    if listing.get("missing"):
        raise DeployError(f"{conn.target}: {remote} does not exist",
                          hint="the board has collected nothing yet: set it up with edgerec device setup --collect, "
                               "or pass --remote FOLDER")
    files = listing["files"]
    res.listed = len(files)
    ready = _complete(files)
    todo = []
    for f in files:
        if f["pulled"]:
            res.already += 1
        elif f["path"] not in ready:
            res.pending += 1
        else:
            todo.append(f)
    total, done = sum(f["size"] for f in todo), 0
    marks: list[str] = []
    try:
        for f in todo:
            rel = _safe_rel(f["path"])
            target = out / rel
            seen = index.get(f["sha256"])
            if seen is not None:
                if seen.get("board") == label and seen.get("remote_path") == f["path"]:
                    res.already += 1  # copied by a pull that stopped before marking it
                else:
                    res.duplicates += 1
                marks.append(f["path"])
            elif target.exists():
                if target.is_file() and sha256_file(target) == f["sha256"]:
                    res.already += 1
                    index.add(_record(f, label, target, dest))
                    marks.append(f["path"])
                else:
                    res.conflicts.append(str(rel))
            elif _copy(conn, remote, f, target):
                index.add(_record(f, label, target, dest))
                res.copied += 1
                res.bytes += f["size"]
                marks.append(f["path"])
            else:
                res.changed += 1
            done += f["size"]
            if progress is not None:
                progress(done, total)
            if len(marks) >= _BATCH:
                res.marked += _mark(conn, remote, marks)
    finally:
        if marks:
            res.marked += _mark(conn, remote, marks)
    res.ok = True
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


def _record(f: dict, label: str, target: Path, dest: Path) -> dict:
    return {"sha256": f["sha256"], "path": target.relative_to(dest).as_posix(), "board": label,
            "remote_path": f["path"], "size": f["size"], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _list(conn, remote: str, settle: float) -> dict:
    r = conn.run(f"python3 -c {q(_LIST_SCRIPT)} {q(remote)} {q(str(settle))}", check=False, timeout=600,
                 what=f"listing {remote}")
    if not r.ok:
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
        raise DeployError(f"{conn.target}: cannot list {remote}: " + " | ".join(tail),
                          hint="the board needs python3 (every Raspberry Pi OS and Jetson image has it)")
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise DeployError(f"{conn.target}: listing {remote} printed something that is not JSON: {r.stdout[:200]!r}") from None


def _copy(conn, remote: str, f: dict, target: Path) -> bool:
    """Download into a partial file beside ``target``, check its sha256, link it into place (never replacing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
    try:
        conn.get(f"{remote.rstrip('/')}/{f['path']}", part)
        if sha256_file(part) != f["sha256"]:
            return False
        os.link(part, target)  # fails if target appeared meanwhile: nothing is overwritten
        return True
    except FileExistsError:
        return False
    finally:
        part.unlink(missing_ok=True)


def _mark(conn, remote: str, marks: list[str]) -> int:
    """Append ``marks`` to the board's ``.pulled`` (one path a line) and empty the list."""
    n = len(marks)
    text = "".join(m + "\n" for m in marks)
    conn.run(f"printf %s {q(text)} >> {q(remote.rstrip('/') + '/' + PULLED_NAME)}", what="marking pulled frames")
    marks.clear()
    return n


def pull_frames_inventory(hosts, dest: str | Path, *, remote: str | None = None, merge: bool = False,
                          settle: float = 5.0, concurrency: int = 4,
                          on_done: Callable[[PullResult], None] | None = None) -> list[PullResult]:
    """:func:`pull_frames` from every host of an inventory (``load_inventory``), ``concurrency`` at once, into one
    ``dest`` with one shared index (so the same bytes from two boards are kept once). A board that fails is
    reported in its result and never stops the others."""
    from concurrent.futures import ThreadPoolExecutor

    from .ssh import connect

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    index = PullIndex(dest)
    labels = [board_folder(h.label) for h in hosts]
    clash = sorted({x for x in labels if labels.count(x) > 1})
    if clash and not merge:
        raise EdgerecError(f"two boards would share the folder {dest}/{clash[0]}", hint="give each host a distinct name: in hosts.yaml")

    def one(h) -> PullResult:
        t0 = time.perf_counter()
        try:
            with connect(h.target, identity=h.identity, known_hosts=h.known_hosts,
                         insecure_accept_new=h.insecure_accept_new) as conn:
                r = pull_frames(conn, dest, board=h.label, remote=remote, root=h.root, merge=merge, settle=settle,
                                index=index)
        except EdgerecError as exc:
            r = PullResult(h.label, error=exc.message + (f" (fix: {exc.hint})" if exc.hint else ""))
        except Exception as exc:  # one board's surprise must not stop the fleet; it is in its result
            r = PullResult(h.label, error=f"{type(exc).__name__}: {exc}")
        r.seconds = r.seconds or round(time.perf_counter() - t0, 3)
        if on_done is not None:
            on_done(r)
        return r

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, hosts))

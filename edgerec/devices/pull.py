"""Pull mode, run ON the board: fetch a bundle over HTTP(S), verify it, switch atomically, restart.

    edgerec device pull https://models.example.com/digits/1.4/

The URL is a bundle folder served as static files (``edgerec.json`` and the files it lists): an
S3/GCS bucket, a CDN or any web server. Same board layout, lock, checks and rollback as
``edgerec deploy``, so a fleet can mix push and pull. A timer or the fleet tool runs it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .. import limits
from ..bundle import MANIFEST_NAME, Manifest, parse_manifest, validate, verify_bundle
from ..errors import BundleError, DeployError
from . import board as _board
from .deploy import DEFAULT_ROOT, DeployResult, check_name

__all__ = ["pull"]

_SUMS = "SHA256SUMS"


def _fetch(url: str, dest: Path | None, timeout: float) -> tuple[bytes | None, str, int]:
    """Download ``url`` (to ``dest`` when given); returns (body if no dest, sha256, size)."""
    h = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            if dest is None:  # the manifest: one byte over the limit is enough for parse_manifest to refuse it
                body = r.read(limits.MAX_MANIFEST_BYTES + 1)
                h.update(body)
                return body, h.hexdigest(), len(body)
            with open(dest, "wb") as f:
                for block in iter(lambda: r.read(1 << 16), b""):
                    f.write(block)
                    h.update(block)
                    size += len(block)
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise DeployError(f"cannot fetch {url}: {exc}", hint="check the URL and the network; the board keeps its current model") from exc
    return None, h.hexdigest(), size


def _files(manifest: Manifest) -> dict[str, str | None]:
    files: dict[str, str | None] = {}
    for a in manifest.ok_artifacts():
        for rel in (a.file, *a.files):
            if rel:
                files[rel] = a.sha256.get(rel)
        files.update(a.sha256)
    for rel in manifest.check_images:
        files.setdefault(rel, None)
    for rel in files:
        if rel.startswith("/") or ".." in Path(rel).parts or any(c in rel for c in "\n\r\\"):
            raise BundleError(f"bundle file name {rel!r} is not safe to download")
    return files


class _Lock:
    def __init__(self, path: Path, wait: float):
        self.path, self.wait = path, wait

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the same lock `edgerec deploy` takes with flock(1)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.f.close()
                    raise DeployError(f"the board is busy: another deploy holds {self.path}", hint="try again later")
                time.sleep(0.1)

    def __exit__(self, *exc):
        self.f.close()


def pull(url: str, *, root: str | Path = DEFAULT_ROOT, service: bool = True, health_timeout: float = 30.0,
         keep: int = 3, timeout: float = 60.0, lock_wait: float = 300.0) -> DeployResult:
    """Fetch the bundle at ``url`` into this board's ``root``; switch only after every sha256 checks out."""
    root = Path(os.path.expanduser(str(root)))
    base = url if url.endswith("/") else url + "/"
    t0 = time.perf_counter()
    body, _, _ = _fetch(urllib.parse.urljoin(base, MANIFEST_NAME), None, timeout)
    data = parse_manifest(body, where=base + MANIFEST_NAME)
    validate(data, where=base + MANIFEST_NAME)
    manifest = Manifest.from_dict(data)
    name, version = check_name(manifest.name, "bundle name"), check_name(manifest.version, "version")
    res = DeployResult(base, name, version)
    models = root / "models" / name
    with _Lock(root / ".lock", lock_wait):
        for stale in list(root.glob("models/*/.staging-*")) + list(models.glob(".trash-*")):
            shutil.rmtree(stale, ignore_errors=True)
        cur = models / "current"
        res.previous = os.readlink(cur) if cur.is_symlink() else None
        final = models / version
        if _intact(final, body):  # this exact version is already here: nothing to fetch
            res.skipped_upload = True
        else:
            _download(base, body, manifest, models, version, res, timeout)
        _board.switch(root, name, version)
        if service:
            res.health = _board.activate(root, name, version, res.previous, health_timeout, action="pull", extra={"url": base})
            if not res.health["healthy"]:
                res.rolled_back = True
                rb = res.health["rollback"]
                back = f"rolled back to {rb['to']}" if rb["to"] else "no previous version; the service is stopped"
                raise DeployError(f"health check failed for {name} {version}: {res.health['reason']}; {back}",
                                  hint="fix the model or the board (edgerec device doctor) and publish again")
        else:
            _log(root, {"time": time.time(), "action": "pull", "name": name, "version": version, "from": res.previous, "url": base})
        versions = sorted((p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".") and not p.is_symlink()),
                          key=lambda p: p.stat().st_mtime, reverse=True)
        for old in versions[max(keep, 1):]:
            if old.name not in (version, res.previous):
                shutil.rmtree(old, ignore_errors=True)
    res.ok = True
    res.seconds["total"] = round(time.perf_counter() - t0, 3)
    return res


def _intact(final: Path, body: bytes) -> bool:
    try:
        if (final / MANIFEST_NAME).read_bytes() != body or not (final / _SUMS).is_file():
            return False
        verify_bundle(final)
    except (OSError, BundleError):
        return False
    return True


def _download(base: str, body: bytes, manifest: Manifest, models: Path, version: str, res: DeployResult,
              timeout: float) -> None:
    """Fetch every file into a staging folder, check each sha256, then rename it into place."""
    staging = models / f".staging-{version}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        (staging / MANIFEST_NAME).write_bytes(body)
        sums = {}
        for rel, expected in _files(manifest).items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _, digest, size = _fetch(urllib.parse.urljoin(base, urllib.parse.quote(rel)), dest, timeout)
            if expected and digest != expected:
                raise DeployError(f"{rel}: sha256 mismatch after download (expected {expected[:12]}…, got {digest[:12]}…); "
                                  "nothing was switched", hint="the server or the transfer corrupted it; pull again")
            sums[rel] = digest
            res.uploaded_bytes += size
        sums[MANIFEST_NAME] = hashlib.sha256(body).hexdigest()
        verify_bundle(staging)  # the same check `edgerec run` does, on the files as they lie on the board
        (staging / _SUMS).write_text("".join(f"{d}  {r}\n" for r, d in sums.items()))
        final = models / version
        if final.exists():
            trash = models / f".trash-{secrets.token_hex(4)}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _log(root: Path, event: dict) -> None:
    with open(root / "deploys.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")

"""The bundle's single-file form: a gzip'd tar of the bundle folder, and an unpack that cannot escape.

Standard library only (the runtime and the device side use it). ``unpack`` refuses, before writing
anything, an archive with a member that is absolute, climbs out with ``..``, is a link (symbolic or hard),
a device, a FIFO, or anything but a regular file or folder. It extracts into a temporary sibling folder and
renames it into place at the end, so a folder at ``dest`` is always a complete bundle.

>>> pack("out/bundle", "out/bundle.edgerec")        # doctest: +SKIP
>>> unpack("out/bundle.edgerec", "/opt/edgerec/models/v3")   # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from .errors import BundleError

__all__ = ["ARCHIVE_SUFFIXES", "pack", "unpack", "list_members", "is_archive"]

ARCHIVE_SUFFIXES = (".edgerec", ".tar.gz", ".tgz")
MANIFEST = "edgerec.json"
_MAX_MEMBERS = 10_000


def is_archive(path: str | Path) -> bool:
    name = str(path).lower()
    return Path(path).is_file() and name.endswith(ARCHIVE_SUFFIXES)


def pack(folder: str | Path, archive: str | Path) -> Path:
    """Write ``folder``'s files into ``archive`` (gzip'd tar, paths relative to the folder).

    Members are sorted and carry no owner names or timestamps, so the same bundle packs to the same
    content. Symbolic links inside the folder are refused (a bundle holds plain files only).
    """
    folder, archive = Path(folder), Path(archive)
    if not (folder / MANIFEST).is_file():
        raise BundleError(f"{folder} is not a bundle folder (no {MANIFEST})", hint="pack the folder `edgerec export` wrote")
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            p = Path(root) / name
            if p.is_symlink() or not p.is_file():
                raise BundleError(f"{p} is not a regular file; a bundle holds plain files only")
            if p.resolve() == archive.resolve():
                continue
            files.append(p)
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    try:
        # gzip header without a file name or time stamp: the same bundle packs to the same bytes
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for p in files:
                info = tar.gettarinfo(str(p), arcname=p.relative_to(folder).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o644
                with open(p, "rb") as f:
                    tar.addfile(info, f)
        tmp.replace(archive)
    finally:
        tmp.unlink(missing_ok=True)
    return archive


def _check_member(m: tarfile.TarInfo, where: Path) -> None:
    name = m.name
    pure = PurePosixPath(name)
    if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{where}: member '{name}' has an absolute path; refusing to unpack")
    if ".." in pure.parts or "\\" in name:
        raise BundleError(f"{where}: member '{name}' leaves the bundle folder ('..'); refusing to unpack")
    if m.issym() or m.islnk():
        raise BundleError(f"{where}: member '{name}' is a link (to '{m.linkname}'); refusing to unpack")
    if not (m.isfile() or m.isdir()):
        kind = "device" if (m.ischr() or m.isblk()) else "FIFO" if m.isfifo() else "special file"
        raise BundleError(f"{where}: member '{name}' is a {kind}; refusing to unpack")


def list_members(archive: str | Path) -> list[tarfile.TarInfo]:
    """Every member after the safety checks (raises ``BundleError`` on the first bad one)."""
    archive = Path(archive)
    if not archive.is_file():
        raise BundleError(f"archive not found: {archive}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} is not a readable bundle archive: {exc}") from exc
    if len(members) > _MAX_MEMBERS:
        raise BundleError(f"{archive} has {len(members)} members; a bundle has far fewer")
    for m in members:
        _check_member(m, archive)
    if not any(PurePosixPath(m.name).as_posix().lstrip("./") == MANIFEST for m in members if m.isfile()):
        raise BundleError(f"{archive} has no {MANIFEST} at its root", hint="pack a bundle folder with `edgerec bundle pack`")
    return members


def unpack(archive: str | Path, dest: str | Path, *, overwrite: bool = False) -> Path:
    """Extract ``archive`` into the folder ``dest`` (created; must not exist unless ``overwrite``)."""
    archive, dest = Path(archive), Path(dest)
    members = list_members(archive)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest} already exists", hint="choose another folder or pass overwrite=True (--force)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in members:
                target = (tmp / m.name).resolve()
                if target != tmp.resolve() and tmp.resolve() not in target.parents:
                    raise BundleError(f"{archive}: member '{m.name}' resolves outside the target; refusing to unpack")
            # the checks above are ours; the "data" filter is the standard library's second line of defence
            tar.extractall(tmp, members=members, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BundleError(f"could not unpack {archive}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest

"""The bundle's single-file form: a gzip'd tar of the bundle folder, and an unpack that cannot escape.

Standard library only (the runtime and the device side use it). ``unpack`` refuses, before writing
anything, an archive with a member that is absolute, climbs out with ``..``, is a link (symbolic or hard),
a device, a FIFO, or anything but a regular file or folder, and one whose members add up to more than
``limits.MAX_ARCHIVE_BYTES`` or number more than ``limits.MAX_ARCHIVE_MEMBERS``. It extracts into a temporary
sibling folder, checks it (``check=verify_bundle``), and only then renames the old folder aside and the new
one in (renaming the old one back if that fails), so a folder at ``dest`` is always a complete bundle and
a bad archive changes nothing.

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
from typing import Callable

from . import limits
from .errors import BundleError

__all__ = ["ARCHIVE_SUFFIXES", "pack", "unpack", "list_members", "read_manifest_bytes", "is_archive"]

ARCHIVE_SUFFIXES = (".edgerec", ".tar.gz", ".tgz")
MANIFEST = "edgerec.json"


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

def _is_manifest(m: tarfile.TarInfo) -> bool:
    return m.isfile() and PurePosixPath(m.name).as_posix().lstrip("./") == MANIFEST


def list_members(archive: str | Path) -> list[tarfile.TarInfo]:
    """Every member after the safety checks (raises ``BundleError`` on the first bad one).

    Headers are read one at a time, so a bad member, too many members or too many bytes stop the listing there.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise BundleError(f"archive not found: {archive}")
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                _check_member(m, archive)
                members.append(m)
                total += m.size
                if len(members) > limits.MAX_ARCHIVE_MEMBERS:
                    raise BundleError(f"{archive} has more than {limits.MAX_ARCHIVE_MEMBERS} members "
                                      "(limits.MAX_ARCHIVE_MEMBERS); a bundle has far fewer; refusing to unpack",
                                      hint="this is not a bundle archive; pack one with `edgerec bundle pack`")
                if total > limits.MAX_ARCHIVE_BYTES:
                    raise BundleError(f"{archive} would unpack to more than {limits.MAX_ARCHIVE_BYTES / 2**30:g} GiB "
                                      "(limits.MAX_ARCHIVE_BYTES); refusing to unpack",
                                      hint="this is not a bundle archive, or a bundle far larger than a board can hold")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} is not a readable bundle archive: {exc}") from exc
    if not any(_is_manifest(m) for m in members):
        raise BundleError(f"{archive} has no {MANIFEST} at its root", hint="pack a bundle folder with `edgerec bundle pack`")
    return members


def read_manifest_bytes(archive: str | Path) -> bytes:
    """The archive's ``edgerec.json``, read without extracting anything (``edgerec bundle info``).

    ``pack`` writes the manifest among the first members, so this reads the headers up to it and no further.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise BundleError(f"archive not found: {archive}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            for i, m in enumerate(tar):
                _check_member(m, archive)
                if i >= limits.MAX_ARCHIVE_MEMBERS:
                    break
                if _is_manifest(m):
                    if m.size > limits.MAX_MANIFEST_BYTES:
                        raise BundleError(f"{archive}: its {MANIFEST} is {m.size / 2**20:.1f} MB; that is not a manifest")
                    return tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} is not a readable bundle archive: {exc}") from exc
    raise BundleError(f"{archive} has no {MANIFEST} at its root", hint="pack a bundle folder with `edgerec bundle pack`")


def unpack(archive: str | Path, dest: str | Path, *, overwrite: bool = False,
           check: Callable[[Path], object] | None = None) -> Path:
    """Extract ``archive`` into the folder ``dest`` (created; must not exist unless ``overwrite``).

    ``check(folder)`` (e.g. ``verify_bundle``) runs on the extracted folder before it replaces anything;
    if it raises, or anything else fails, ``dest`` is as it was and nothing new is left behind.
    """
    archive, dest = Path(archive), Path(dest)
    members = list_members(archive)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest} already exists", hint="choose another folder or pass overwrite=True (--force)")
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BundleError(f"{dest} exists and is not a folder; refusing to replace it", hint="choose another folder")
    created = next((p for p in reversed(dest.parents) if not p.exists()), None)  # the first folder made for dest
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
        if check is not None:
            check(tmp)
        _swap_in(tmp, dest)
    except (tarfile.TarError, OSError) as exc:
        _clean(tmp, created)
        raise BundleError(f"could not unpack {archive}: {exc}") from exc
    except BaseException:
        _clean(tmp, created)
        raise
    return dest


def _swap_in(new: Path, dest: Path) -> None:
    """``new`` becomes ``dest``: the old folder is renamed aside first, and back if the second rename fails."""
    if not dest.exists():
        new.rename(dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
    aside.rmdir()  # a free name beside dest, for one rename(2)
    dest.rename(aside)
    try:
        new.rename(dest)
    except BaseException:
        aside.rename(dest)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _clean(tmp: Path, created: Path | None) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    if created is not None:  # the folders this unpack made for dest hold nothing of value
        shutil.rmtree(created, ignore_errors=True)

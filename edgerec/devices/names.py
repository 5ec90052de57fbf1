"""Names that become paths on a board: model names, versions and edgerec's root folder.

One validator, used wherever such a name enters: ``deploy`` (the bundle's name and version), ``rollback``
(``--name``, ``--to``), ``device pull``, ``--root``, and the board itself (``board activate``). Names may
hold spaces, quotes and any other character a folder name can, because every board command quotes them
and passes ``--`` before them; what is refused is what would still change the meaning of a path or a
command: ``/`` and ``\\``, ``.``/``..``, a leading ``.`` (the board's own hidden files), a leading ``-``
(an option to any tool a person runs on the board by hand), NUL and line breaks.

Standard library only: the board imports it.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..errors import BundleError, ConfigError, EdgerecError

__all__ = ["check_name", "check_root", "MAX_NAME_LENGTH"]

MAX_NAME_LENGTH = 255  # a folder name on ext4, FAT and most others


def check_name(value: object, what: str, *, error: type[EdgerecError] = BundleError) -> str:
    """``value`` if it can be a folder name on the board, else ``error`` saying why and how to fix it."""
    reason = None
    if not isinstance(value, str) or not value:
        reason = "is empty"
    elif value in (".", ".."):
        reason = "is a path, not a name"
    elif any(c in value for c in "/\\\0\n\r"):
        reason = "holds '/', a backslash, NUL or a line break"
    elif value.startswith("."):
        reason = "starts with '.' (the board's hidden files)"
    elif value.startswith("-"):
        reason = "starts with '-' (commands on the board would read it as an option)"
    elif len(value.encode()) > MAX_NAME_LENGTH:
        reason = f"is longer than {MAX_NAME_LENGTH} bytes"
    if reason:
        fix = f"re-export with another {what}" if error is BundleError else f"give a {what} as `edgerec status` lists it"
        raise error(f"{what} {value!r} cannot be a folder name on the board: it {reason}", hint=fix)
    return value


def check_root(root: object, *, what: str = "--root") -> str:
    """edgerec's folder on the board: absolute or under ``~``, no ``..``, no NUL or line breaks."""
    if not isinstance(root, str) or not root.strip():
        raise ConfigError(f"{what} is empty", hint="e.g. --root ~/.edgerec (the default)")
    if any(c in root for c in "\0\n\r"):
        raise ConfigError(f"{what} {root!r} holds NUL or a line break")
    if not (root.startswith("/") or root == "~" or root.startswith("~/")):
        raise ConfigError(f"{what} {root!r} must be an absolute path or start with ~/",
                          hint="e.g. --root ~/.edgerec or --root /opt/edgerec")
    if ".." in PurePosixPath(root).parts:
        raise ConfigError(f"{what} {root!r} climbs with '..'", hint="write the folder's own path")
    return root

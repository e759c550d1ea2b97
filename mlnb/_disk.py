"""Full disks: recognising one in any error, and the one line that says so.

:func:`is_disk_full` is true for an error that is, or was caused by, ENOSPC or EDQUOT, or
SQLite's "database or disk is full" (``SQLITE_FULL``, also when MLflow or SQLAlchemy wrap
it). :func:`disk_full_error` builds the :class:`~mlnb.exceptions.DiskFullError` naming the
folder, the space needed when known, the space free, and the fix. The stores raise it
where they know the folder; the command line turns any other full-disk error into it, so
no command ends in a traceback on a full disk.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from mlnb.exceptions import DiskFullError

__all__ = [
    "disk_full_error",
    "error_chain",
    "failed_folder",
    "free_bytes",
    "is_disk_full",
    "sync_folder",
]

_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: sqlite3.Error.sqlite_errorcode of "database or disk is full", and of the "disk I/O error"
#: SQLite gives when it cannot grow the shared-memory file of a WAL database (SHMSIZE)
_SQLITE_CODES = frozenset({13, 4874})
_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (``__cause__``, else ``__context__``), each once."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means the disk or the quota is full."""
    if isinstance(exc, DiskFullError):
        return True
    for item in error_chain(exc):
        if getattr(item, "errno", None) in _ERRNOS:
            return True
        if getattr(item, "sqlite_errorcode", None) in _SQLITE_CODES:
            return True
        text = str(item).lower()
        if any(t in text for t in _TEXTS):
            return True
    return False


def failed_folder(exc: BaseException) -> Path | None:
    """The folder of the file a full-disk OSError in ``exc``'s chain names, if any (of a
    copy's destination, which ``shutil`` gives as ``filename2``: ``filename`` is its
    source)."""
    for item in error_chain(exc):
        if isinstance(item, OSError) and item.errno in _ERRNOS:
            name = item.filename2 or item.filename
            if name:
                path = Path(os.fsdecode(name))
                return path if path.is_dir() else path.parent
    return None


def free_bytes(folder: Path) -> int | None:
    """Bytes free on the disk holding ``folder`` (or its nearest existing parent)."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def disk_full_error(folder: Path, needed: int | None = None, doing: str = "") -> DiskFullError:
    """The one-line error for a full disk under ``folder`` (``doing``: "to store ...")."""
    free = free_bytes(folder)
    space = []
    if needed is not None:
        space.append(f"needs about {_size(needed)}")
    if free is not None:
        space.append(f"{_size(free)} free")
    detail = f" ({', '.join(space)})" if space else ""
    what = f" {doing}" if doing else ""
    return DiskFullError(
        f"no space left on the disk holding {folder}{what}{detail}. Free some space there "
        "(or move the project to a larger disk) and run the command again; nothing was "
        "half-written and everything recorded before is intact.",
        folder=str(folder),
        needed=needed,
    )


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a file created or renamed in it survives a crash (best effort on
    platforms that cannot open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

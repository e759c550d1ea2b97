"""The content-addressed object store under ``<root>/.mlnb/objects``.

An object is kept once, at ``objects/<first 2 hex>/<rest of the hash>``. It is written to a
temporary file in the same folder, fsynced, hashed again and renamed into place, so a crash
never leaves a partial object under a valid hash. A folder is stored as its manifest (an
object of its own) plus one object per file. Reading verifies the hash.

Healing: content versioned again whose object is already stored is checked against that
object first: its size always, and its hash unless the stat cache saw this very object
(size, mtime, inode, ctime) with this hash before, which it does for every object it wrote
or checked. Objects are read-only and never changed in place, so any write to one through
the file system (a truncation, an edit, a copy over it) changes its ctime and it is read
and hashed again; a mismatch is rewritten from the good copy in hand (temporary file,
fsync, rename over it, fsync of the folder) and an :class:`ObjectHealedWarning` names the
object and what was versioned. (Damage that bypasses the file system, such as bit rot on
the disk, is still caught when the object is read: checkout, load, ``push``.)

A full disk (ENOSPC, EDQUOT) raises :class:`DiskFullError` naming this folder and the
space needed; the temporary file is removed, so no partial object is ever visible.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from blake3 import blake3

from mlnb._disk import disk_full_error, is_disk_full, sync_folder
from mlnb.exceptions import (
    CorruptObjectError,
    MlnbError,
    ObjectHealedWarning,
    VersioningError,
    VersionNotFoundError,
)
from mlnb.versioning._hashing import (
    CHUNK,
    StatCache,
    TreeEntry,
    hash_bytes,
    hash_file,
    hash_tree,
    tree_manifest,
)

__all__ = ["ObjectStore"]

#: the state of an object: None (not stored), True (has its hash), False (corrupted)
State = bool | None
_UNCHECKED = object()


class ObjectStore:
    def __init__(self, folder: Path, cache: StatCache | None = None) -> None:
        self.folder = folder
        self._base = os.path.abspath(folder)
        #: remembers the stat keys of objects written or checked here (see the docstring)
        self.cache = cache

    def path(self, digest: str) -> Path:
        return self.folder / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return os.path.isfile(f"{os.fspath(self.folder)}/{digest[:2]}/{digest[2:]}")

    def __iter__(self) -> Iterator[str]:
        if not self.folder.is_dir():
            return
        for sub in sorted(self.folder.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for item in sorted(sub.iterdir()):
                    if not item.name.startswith(".tmp-"):
                        yield sub.name + item.name

    # -- checking --------------------------------------------------------------------
    def _key(self, digest: str) -> str:
        """The object's absolute path as a string (its stat cache key; no pathlib: put_tree
        asks for one per file)."""
        return f"{self._base}/{digest[:2]}/{digest[2:]}"

    def state(self, digest: str, size: int | None = None) -> State:
        """None if the object is not stored, True if its content has its hash (and ``size``
        bytes, when given), False if it is corrupted or truncated. Costs a ``stat`` when the
        stat cache knows the object unchanged, else a hash of it."""
        key = self._key(digest)
        try:
            st = os.stat(key)
        except FileNotFoundError:
            return None
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
            return False
        if self.cache is not None and self.cache.lookup(key, st) == digest:
            return True
        try:
            actual = hash_file(Path(key))
        except OSError:
            return False
        if actual != digest:
            return False
        if self.cache is not None:
            self.cache.remember(key, st, digest)
        return True

    def intact(self, digest: str, size: int | None = None) -> bool:
        """True if the object is stored and has its hash (see :meth:`state`)."""
        return self.state(digest, size) is True

    # -- writing ---------------------------------------------------------------------
    @contextmanager
    def _writing(self, needed: int | None) -> Iterator[None]:
        """A full disk under the store becomes a :class:`DiskFullError` naming it."""
        try:
            yield
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(
                    self.folder, needed, "to store an object of the version"
                ) from exc
            raise

    def _commit(self, tmp: Path, digest: str, label: str | None, known: Any = _UNCHECKED) -> None:
        """Rename ``tmp`` (complete, fsynced, hashing to ``digest``) into place, unless a
        good copy is there already; a corrupted one is replaced (and said so)."""
        target = self.path(digest)
        size = tmp.stat().st_size
        state = self.state(digest, size) if known is _UNCHECKED else known
        if state is True:
            tmp.unlink()
            return
        tmp.chmod(0o444)  # objects are immutable
        os.replace(tmp, target)
        if state is False:
            sync_folder(target.parent)  # the good copy is there to stay
            what = f" of {label}" if label else ""
            warnings.warn(
                ObjectHealedWarning(
                    f"object {digest[:12]}{what} was corrupted in the store ({target}); "
                    "rewrote it from the good copy being versioned."
                ),
                stacklevel=4,
            )
        if self.cache is not None:
            self.cache.remember(self._key(digest), os.stat(target), digest)

    def _temp(self, digest_hint: str = "xx") -> tuple[int, Path]:
        folder = self.folder / digest_hint[:2]
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        return fd, Path(name)

    def put_file(
        self,
        src: Path,
        expected: str | None = None,
        label: str | None = None,
        known: Any = _UNCHECKED,
    ) -> str:
        """Copy ``src`` in; returns its hash. Verifies the copy against ``expected``; an
        object of that hash already stored is checked (:meth:`state`) and, if corrupted,
        rewritten from ``src`` (``label`` names it in the warning; default ``src``)."""
        label = label or str(src)
        size = src.stat().st_size
        if expected is not None:
            if known is _UNCHECKED:
                known = self.state(expected, size)
            if known is True:
                return expected
        with self._writing(size):
            fd, tmp = self._temp(expected or "xx")
        hasher = blake3()
        with self._writing(size):  # (outside: the free space it names is after the clean-up)
            try:
                with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        digest = hasher.hexdigest()
        if expected is not None and digest != expected:
            tmp.unlink()
            raise CorruptObjectError(
                f"{src} changed while it was being stored (expected {expected[:12]}, read "
                f"{digest[:12]}); version it again when nothing is writing to it."
            )
        with self._writing(size):
            try:
                self._commit_anywhere(tmp, digest, label, known)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return digest

    def _commit_anywhere(
        self, tmp: Path, digest: str, label: str | None, known: Any = _UNCHECKED
    ) -> Path:
        """Commit a temporary file made in another object's folder; returns where it went
        (only a file left there if the commit failed)."""
        if digest[:2] != tmp.parent.name:
            moved = self.folder / digest[:2] / tmp.name
            moved.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, moved)
            tmp = moved
        try:
            self._commit(tmp, digest, label, known)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def put_written(self, write: Callable[[IO[bytes]], None], label: str | None = None) -> str:
        """Store what ``write`` writes into the file it is given; returns its hash.

        The object is written to a temporary file, fsynced, hashed and renamed into place,
        so nothing is ever held whole in memory twice. An exception from ``write`` leaves
        nothing behind and propagates; a full disk becomes a :class:`DiskFullError`, any
        other OSError of the store itself (no permission) a :class:`VersioningError`. An
        object of the same hash already stored but corrupted is replaced (``label`` names
        what was versioned in the warning).
        """
        try:
            with self._writing(None):
                fd, tmp = self._temp()
        except OSError as exc:
            raise self._write_error(exc) from exc
        try:
            with self._writing(None):
                try:
                    with os.fdopen(fd, "wb") as out:
                        write(out)
                        out.flush()
                        os.fsync(out.fileno())
                    digest = hash_file(tmp)
                    self._commit_anywhere(tmp, digest, label)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
        except OSError as exc:  # a read-only or unwritable store
            raise self._write_error(exc) from exc
        return digest

    def _write_error(self, exc: OSError) -> VersioningError:
        return VersioningError(
            f"could not write to the object store {self.folder}: {exc.strerror or exc}. Fix "
            "its permissions, then version it again; nothing was recorded."
        )

    def put_bytes(self, data: bytes, label: str | None = None) -> str:
        """Store ``data``; an object of its hash already stored is checked and, if
        corrupted, rewritten from ``data``."""
        digest = hash_bytes(data)
        known = self.state(digest, len(data))
        if known is True:
            return digest
        with self._writing(len(data)):
            fd, tmp = self._temp(digest)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                self._commit(tmp, digest, label, known)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return digest

    def put_tree(
        self, root: Path, cache: StatCache | None = None, label: str | None = None
    ) -> tuple[str, list[TreeEntry]]:
        """Store a folder: each file, then its manifest. Returns (tree hash, entries).
        Files whose objects are stored are checked (:meth:`state`, one ``stat`` each when
        the stat cache knows them) and rewritten from the folder if corrupted."""
        digest, entries = hash_tree(root, cache)
        if self.cache is not None:
            self.cache.preload(self._key(entry.hash) for entry in entries)
        base = os.fspath(root)
        name = label or base
        for entry in entries:
            known = self.state(entry.hash, entry.size)
            if known is not True:
                self.put_file(
                    Path(base, entry.path),
                    expected=entry.hash,
                    label=f"{name}/{entry.path}",
                    known=known,
                )
        stored = self.put_bytes(tree_manifest(entries), label=f"the manifest of {name}")
        assert stored == digest
        return digest, entries

    # -- reading ---------------------------------------------------------------------
    def verify(self, digest: str) -> Path:
        """The object's path, after checking its content still has its hash."""
        path = self.path(digest)
        if not path.is_file():
            raise VersionNotFoundError(
                f"object {digest[:12]} is not in the store {self.folder}; fetch it with "
                "`mlnb pull REMOTE`."
            )
        actual = hash_file(path)
        if actual != digest:
            raise CorruptObjectError(
                f"object {digest[:12]} in {self.folder} is corrupted (its content hashes to "
                f"{actual[:12]}); refusing to use it. Version the original content again to "
                f"rewrite it, or delete {path} and run `mlnb pull` to fetch a good copy."
            )
        return path

    def read_manifest(self, digest: str) -> list[TreeEntry]:
        data = json.loads(self.verify(digest).read_bytes())
        if data.get("type") != "tree":
            raise CorruptObjectError(f"object {digest[:12]} is not a folder manifest.")
        return [TreeEntry(e["path"], e["hash"], e["size"]) for e in data["entries"]]

    def is_tree(self, digest: str) -> bool:
        path = self.path(digest)
        if not path.is_file() or path.stat().st_size > 64 * 1024 * 1024:
            return False
        with path.open("rb") as fh:
            return fh.read(16).startswith(b'{"entries":')

    def restore_file(self, digest: str, target: Path) -> None:
        source = self.verify(digest)
        target = target.absolute()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.mlnb-tmp")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise disk_full_error(
                    target.parent, source.stat().st_size, f"to restore {target.name}"
                ) from exc
            raise

    def restore_tree(self, digest: str, target: Path) -> None:
        """Restore a folder: every piece verified first, then written to a folder next to
        ``target`` that replaces it only once complete (a full disk leaves ``target`` as
        it was)."""
        entries = self.read_manifest(digest)
        for entry in entries:
            self.verify(entry.hash)  # every piece is good before anything is written
        target = target.absolute()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.mlnb-tmp-{uuid.uuid4().hex[:12]}")
        try:
            staging.mkdir()  # (not mkdtemp: the folder gets the mode the umask gives)
            for entry in entries:
                self.restore_file(entry.hash, staging / entry.path)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, (MlnbError, OSError)) and is_disk_full(exc):
                needed = sum(e.size for e in entries)
                raise disk_full_error(target.parent, needed, f"to restore {target.name}") from exc
            raise
        old: Path | None = None
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f"{staging.name}-old")
            os.replace(target, old)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def children(self, digest: str) -> list[str]:
        """Objects a tree object refers to ([] for a plain object)."""
        if not self.is_tree(digest):
            return []
        try:
            return [e.hash for e in self.read_manifest(digest)]
        except (CorruptObjectError, ValueError, KeyError):
            return []

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def remove(self, digest: str) -> None:
        path = self.path(digest)
        if path.exists():
            path.chmod(0o644)
            path.unlink()

    def info(self) -> dict[str, Any]:
        count = total = 0
        for digest in self:
            count += 1
            total += self.size(digest)
        return {"objects": count, "bytes": total}

"""The content-addressed object store under ``<root>/.mlnb/objects``.

An object is kept once, at ``objects/<first 2 hex>/<rest of the hash>``. It is written to a
temporary file in the same folder, fsynced, hashed again and renamed into place, so a crash
never leaves a partial object under a valid hash. A folder is stored as its manifest (an
object of its own) plus one object per file. Reading verifies the hash.

"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from blake3 import blake3

from mlnb.exceptions import CorruptObjectError, VersioningError, VersionNotFoundError
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


class ObjectStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

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

    # -- writing ---------------------------------------------------------------------
    def _commit(self, tmp: Path, digest: str) -> None:
        target = self.path(digest)
        if target.exists():
            tmp.unlink()
            return
        os.replace(tmp, target)
        target.chmod(0o444)  # objects are immutable

    def _temp(self, digest_hint: str = "xx") -> tuple[int, Path]:
        folder = self.folder / digest_hint[:2]
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        return fd, Path(name)

    def put_file(self, src: Path, expected: str | None = None) -> str:
        """Copy ``src`` in; returns its hash. Verifies the copy against ``expected``."""
        if expected is not None and self.has(expected):
            return expected
        fd, tmp = self._temp(expected or "xx")
        hasher = blake3()
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
        self._commit_anywhere(tmp, digest)
        return digest

    def _commit_anywhere(self, tmp: Path, digest: str) -> None:
        """Commit a temporary file made in another object's folder."""
        if digest[:2] != tmp.parent.name:
            moved = self.folder / digest[:2] / tmp.name
            moved.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, moved)
            tmp = moved
        self._commit(tmp, digest)

    def put_written(self, write: Callable[[IO[bytes]], None]) -> str:
        """Store what ``write`` writes into the file it is given; returns its hash.

        The object is written to a temporary file, fsynced, hashed and renamed into place,
        so nothing is ever held whole in memory twice. An exception from ``write`` leaves
        nothing behind and propagates; an OSError of the store itself (a full disk, no
        permission) becomes a :class:`VersioningError` saying so.
        """
        try:
            fd, tmp = self._temp()
        except OSError as exc:
            raise self._write_error(exc) from exc
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            digest = hash_file(tmp)
            self._commit_anywhere(tmp, digest)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):  # a full disk, a read-only or unwritable store
                raise self._write_error(exc) from exc
            raise
        return digest

    def _write_error(self, exc: OSError) -> VersioningError:
        return VersioningError(
            f"could not write to the object store {self.folder}: {exc.strerror or exc}. Free "
            "some space or fix its permissions, then version it again; nothing was recorded."
        )

    def put_bytes(self, data: bytes) -> str:
        digest = hash_bytes(data)
        if self.has(digest):
            return digest
        fd, tmp = self._temp(digest)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        self._commit(tmp, digest)
        return digest

    def put_tree(self, root: Path, cache: StatCache | None = None) -> tuple[str, list[TreeEntry]]:
        """Store a folder: each file, then its manifest. Returns (tree hash, entries)."""
        digest, entries = hash_tree(root, cache)
        base = os.fspath(root)
        for entry in entries:
            if not self.has(entry.hash):
                self.put_file(Path(base, entry.path), expected=entry.hash)
        stored = self.put_bytes(tree_manifest(entries))
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
                f"{actual[:12]}); refusing to use it. Delete {path} and run `mlnb pull` to "
                "fetch a good copy."
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
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.mlnb-tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)

    def restore_tree(self, digest: str, target: Path) -> None:
        entries = self.read_manifest(digest)
        for entry in entries:
            self.verify(entry.hash)  # every piece is good before anything is written
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        for entry in entries:
            self.restore_file(entry.hash, target / entry.path)

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

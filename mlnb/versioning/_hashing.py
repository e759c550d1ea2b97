"""Content hashes: BLAKE3 of files (chunked or memory-mapped, never read whole into
memory) and of folders (the hash of their sorted manifest). A stat cache skips re-reading
files that did not change. (Values in memory: see ``_frames`` and ``_arrays``.)
"""

from __future__ import annotations

import gc
import json
import marshal
import os
import sqlite3
import tempfile
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple, cast

from blake3 import blake3

__all__ = [
    "HASH_NAME",
    "StatCache",
    "TreeEntry",
    "hash_bytes",
    "hash_file",
    "hash_tree",
    "tree_manifest",
]

HASH_NAME = "blake3"
#: files at least this large are memory-mapped and hashed with BLAKE3's own threads
MMAP_THRESHOLD = 4 * 1024 * 1024
CHUNK = 1024 * 1024


def hash_bytes(data: bytes) -> str:
    return blake3(data).hexdigest()


def hash_file(path: Path) -> str:
    """BLAKE3 of a file's bytes, without holding the file in memory."""
    size = path.stat().st_size
    if size >= MMAP_THRESHOLD:
        hasher = blake3(max_threads=blake3.AUTO)
        hasher.update_mmap(str(path))
        return hasher.hexdigest()
    hasher = blake3()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


#: what the stat cache compares before trusting a remembered hash: (size, mtime_ns, inode,
#: ctime_ns). Any difference means the file is read and hashed again. ctime also changes
#: when a file is rewritten in place and its mtime set back (``touch -r``, ``cp -p``).
StatKey = tuple[int, int, int, int]

#: the tree cache's file format; bump it when its layout or :func:`tree_manifest` changes
#: (a tree cache file remembers the folder hash, so it must not outlive the manifest format)
_TREE_CACHE_MAGIC = b"mlnb-tree-cache\x00\x02"
_TREE_CACHE_CHECK = 32  # bytes of BLAKE3 over the payload, after the magic


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _pack_keys(flat: list[int]) -> array[int] | None:
    """Stat keys (4 ints per file, one after the other) as signed 64-bit integers. An inode
    number of 2**63 or more becomes itself minus 2**64: still one to one, as no size, time
    or inode that large is negative. None if they do not fit even so."""
    try:
        return array("q", flat)
    except OverflowError:
        try:
            return array("q", [v - (1 << 64) if 1 << 63 <= v < 1 << 64 else v for v in flat])
        except OverflowError:
            return None


def _listing_signature(paths: list[str], keys: array[int]) -> bytes:
    """BLAKE3 of a walk's relative paths and packed stat keys, in the walk's order."""
    names = "\0".join(paths).encode("utf-8", "surrogatepass")  # "\0" is in no file name
    hasher = blake3(len(names).to_bytes(8, "little"))
    hasher.update(names)
    hasher.update(memoryview(keys).cast("B"))
    return hasher.digest()


class _TreeTable(NamedTuple):
    """What the stat cache remembers of one folder, as :func:`hash_tree` last saw it."""

    digest: str  # the folder's hash
    signature: bytes  # _listing_signature of that walk, in scandir order
    paths: str  # the files' relative paths, sorted, joined by "\0"
    keys: bytes  # their stat keys, packed by _pack_keys
    hashes: str  # their hashes, joined by "\n"

    def columns(self) -> tuple[list[str], array[int], list[str]] | None:
        """(paths, packed stat keys, hashes), or None if they do not add up."""
        paths = self.paths.split("\0") if self.paths else []
        hashes = self.hashes.split("\n") if self.hashes else []
        if len(self.keys) != 32 * len(paths) or len(hashes) != len(paths):
            return None
        keys = array("q")
        keys.frombytes(self.keys)
        return paths, keys, hashes


class StatCache:
    """Remembered hashes of files whose size, mtime, inode and ctime did not change.

    Two stores, both only ever a shortcut (a damaged or missing cache means files are hashed
    again, never a wrong hash):

    * single files: ``path`` itself, an SQLite table ``files (path, size, mtime, inode,
      ctime, hash)``, read one row at a time;
    * folders: one file per folder root under ``<path without suffix>.trees/``, named by the
      BLAKE3 of the root's absolute path, loaded in one read by :func:`hash_tree`. It holds
      a magic string, the 32-byte BLAKE3 of the payload, and the payload: ``marshal`` of
      strings and bytes only (the root, the folder hash, a signature of the last walk, and
      the sorted relative paths, packed stat keys and hashes of the files). A file whose
      magic, checksum or shape is wrong is ignored. It is written to a temporary file and
      renamed into place, so concurrent writers leave one complete file (the last one's).

    New entries are kept in memory until :meth:`save`, which is best effort: a cache that
    cannot be written (read-only, locked, damaged) only means hashing again next time.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._files: dict[str, tuple[StatKey, str] | None] = {}  # read from SQLite (or None)
        self._dirty: dict[str, tuple[StatKey, str]] = {}
        self._trees: dict[str, _TreeTable | None] = {}
        self._dirty_trees: set[str] = set()
        self._lock = threading.Lock()

    # -- single files ------------------------------------------------------------------
    def _row(self, key: str) -> tuple[StatKey, str] | None:
        with self._lock:
            if key in self._files:
                return self._files[key]
        found: tuple[StatKey, str] | None = None
        if self.path is not None and self.path.is_file():
            try:
                conn = sqlite3.connect(self.path)
                try:
                    row = conn.execute(
                        "SELECT size, mtime, inode, ctime, hash FROM files WHERE path = ?", (key,)
                    ).fetchone()
                finally:
                    conn.close()
            except sqlite3.Error:
                row = None  # no table yet, or a damaged cache: only a slower re-hash
            if row is not None and all(type(v) is int for v in row[:4]) and type(row[4]) is str:
                found = ((row[0], row[1], row[2], row[3]), row[4])
        with self._lock:
            return self._files.setdefault(key, found)

    def preload(self, keys: Iterable[str]) -> None:
        """Read the rows of many ``keys`` in one connection (what :meth:`lookup` would read
        one connection each); keys without a row are remembered as having none."""
        with self._lock:
            wanted = [k for k in dict.fromkeys(keys) if k not in self._files]
        if not wanted:
            return
        found: dict[str, tuple[StatKey, str] | None] = dict.fromkeys(wanted)
        if self.path is not None and self.path.is_file():
            try:
                conn = sqlite3.connect(self.path)
                try:
                    for start in range(0, len(wanted), 500):
                        part = wanted[start : start + 500]
                        rows = conn.execute(
                            "SELECT path, size, mtime, inode, ctime, hash FROM files WHERE path "
                            f"IN ({','.join('?' * len(part))})",
                            part,
                        ).fetchall()
                        for row in rows:
                            if all(type(v) is int for v in row[1:5]) and type(row[5]) is str:
                                found[row[0]] = ((row[1], row[2], row[3], row[4]), row[5])
                finally:
                    conn.close()
            except sqlite3.Error:
                pass  # no table yet, or a damaged cache: only a slower re-hash
        with self._lock:
            for key, value in found.items():
                self._files.setdefault(key, value)

    def lookup(self, key: str, st: os.stat_result) -> str | None:
        found = self._row(key)
        if found is not None and found[0] == _stat_key(st):
            return found[1]
        return None

    def remember(self, key: str, st: os.stat_result, digest: str) -> None:
        value = (_stat_key(st), digest)
        with self._lock:
            self._files[key] = value
            self._dirty[key] = value

    def hash(self, path: Path, st: os.stat_result | None = None) -> str:
        st = st or path.stat()
        key = os.path.abspath(path)
        digest = self.lookup(key, st)
        if digest is None:
            digest = hash_file(path)
            self.remember(key, st, digest)
        return digest

    # -- folders -----------------------------------------------------------------------
    def _tree_file(self, root: str) -> Path | None:
        if self.path is None:
            return None
        name = blake3(root.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.path.with_suffix(".trees") / name

    def _tree(self, root: str) -> _TreeTable | None:
        """The remembered table of the folder at absolute path ``root`` (None if none)."""
        with self._lock:
            if root in self._trees:
                return self._trees[root]
        table = _read_tree_cache(self._tree_file(root), root)
        with self._lock:
            return self._trees.setdefault(root, table)

    def _remember_tree(self, root: str, table: _TreeTable) -> None:
        with self._lock:
            self._trees[root] = table
            self._dirty_trees.add(root)

    # -- writing -----------------------------------------------------------------------
    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            rows = [(k, *key, digest) for k, (key, digest) in self._dirty.items()]
            self._dirty.clear()
            trees = [(root, self._trees[root]) for root in sorted(self._dirty_trees)]
            self._dirty_trees.clear()
        for root, table in trees:
            target = self._tree_file(root)
            if table is not None and target is not None:
                _write_tree_cache(target, root, table)
        if not rows:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path)
            try:
                with conn:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                        "mtime INTEGER, inode INTEGER, ctime INTEGER, hash TEXT)"
                    )
                    conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
            finally:
                conn.close()
        except (sqlite3.Error, OSError):
            pass  # only a shortcut: these files are hashed again next time


def _read_tree_cache(path: Path | None, root: str) -> _TreeTable | None:
    """A tree cache file's table, or None when it is missing, damaged or not this root's."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    head = len(_TREE_CACHE_MAGIC)
    payload = memoryview(data)[head + _TREE_CACHE_CHECK :]
    if (
        not data.startswith(_TREE_CACHE_MAGIC)
        or blake3(payload).digest() != data[head : head + _TREE_CACHE_CHECK]
    ):
        return None
    try:
        doc = marshal.loads(payload)  # only ever bytes this module wrote (checksum above)
    except (ValueError, EOFError, TypeError):
        return None
    types = (str, str, str, bytes, str, bytes, str)
    if (
        type(doc) is not tuple
        or len(doc) != len(types)
        or any(type(value) is not kind for value, kind in zip(doc, types, strict=True))
        or doc[:2] != (HASH_NAME, root)
    ):
        return None
    return _TreeTable(*doc[2:])


def _write_tree_cache(path: Path, root: str, table: _TreeTable) -> None:
    """Write a tree cache file atomically (temporary file + rename); best effort: a cache
    that cannot be written only means hashing again next time."""
    payload = marshal.dumps((HASH_NAME, root, *table))
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(_TREE_CACHE_MAGIC)
            out.write(blake3(payload).digest())
            out.write(payload)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


class TreeEntry(NamedTuple):
    """One file of a folder manifest."""

    path: str  # relative, with "/" separators
    hash: str
    size: int


#: TreeEntry from a (path, hash, size) tuple, without the keyword machinery of its __new__
_make_entry = partial(tuple.__new__, TreeEntry)

#: list folders through a file descriptor where the platform can (a file's stat is then an
#: ``fstatat`` relative to its folder, not a look-up of its whole path)
_SCANDIR_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _walk(root: str) -> tuple[list[str], list[int]]:
    """Every regular file under ``root`` (following symlinks to files, not to folders), in
    scandir order: (relative paths with "/" separators, and their stat keys one after the
    other: size, mtime_ns, inode, ctime_ns, size, ...)."""
    paths: list[str] = []
    keys: list[int] = []
    add_path, add_key = paths.append, keys.extend
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        fd = os.open(folder, _DIR_FLAGS) if _SCANDIR_FD else -1
        try:
            with os.scandir(fd) if fd >= 0 else os.scandir(folder) as it:
                for entry in it:
                    if entry.is_file():  # most entries: test it first
                        st = entry.stat()
                        add_path(prefix + entry.name)
                        add_key((st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
                    elif entry.is_dir(follow_symlinks=False):
                        name = entry.name
                        stack.append((os.path.join(folder, name), f"{prefix}{name}/"))
        finally:
            if fd >= 0:
                os.close(fd)
    return paths, keys


def _hash_files(root: str, paths: Sequence[str]) -> list[str]:
    """Hashes of the files at ``paths`` (relative to ``root``), by a thread pool (BLAKE3
    releases the GIL)."""
    full = [Path(root, rel) for rel in paths]
    if len(full) <= 1:
        return [hash_file(path) for path in full]
    workers = min(32, (os.cpu_count() or 2) * 4, len(full))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlnb-hash") as pool:
        return list(pool.map(lambda path: hash_file(path), full))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection inside: building tens of thousands of small objects otherwise
    sets off collections that traverse every object of the process, for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def hash_tree(root: Path, cache: StatCache | None = None) -> tuple[str, list[TreeEntry]]:
    """Hash of a folder (= hash of its manifest) and the manifest's entries, sorted by path.

    One ``scandir`` + ``stat`` per file. When the walk (relative paths and stat keys: size,
    mtime, inode, ctime; in scandir order) has the signature the cache remembers for this
    folder, no file was added, removed or changed: the folder hash and the entries are the
    remembered ones. Otherwise each file whose stat key matches the remembered one keeps its
    hash, the others are read and hashed by a thread pool (BLAKE3 releases the GIL), and the
    manifest is built again.
    """
    cache = cache or StatCache(None)
    top = os.fspath(root)
    key = os.path.abspath(top)
    with _gc_paused():
        paths, flat = _walk(top)
        packed = _pack_keys(flat)
        signature = _listing_signature(paths, packed) if packed is not None else b""
        known = cache._tree(key)
        columns = known.columns() if known is not None else None
        if known is not None and columns is not None and signature == known.signature:
            # the same files with the same stat keys: the same manifest as last time
            known_paths, known_keys, known_hashes = columns
            known_sizes = known_keys[0::4]
            entries = list(
                map(_make_entry, zip(known_paths, known_hashes, known_sizes, strict=True))
            )
            return known.digest, entries
        # something changed: re-hash the files whose (path, stat key) the cache lacks; the
        # walk's keys are compared as packed (an inode past 2**63 in its packed form)
        keys = zip(*[iter(packed if packed is not None else flat)] * 4, strict=True)
        files = sorted(zip(paths, keys, strict=True), key=itemgetter(0))
        ordered = list(map(itemgetter(0), files))
        stale: set[tuple[str, StatKey]] = set(files)
        hashes: list[str | None] = [None] * len(files)
        if columns is not None:
            known_paths, known_keys, known_hashes = columns
            known_quads = zip(*[iter(known_keys)] * 4, strict=True)
            stale.difference_update(zip(known_paths, known_quads, strict=True))
            hashes = list(map(dict(zip(known_paths, known_hashes, strict=True)).get, ordered))
        todo = sorted(rel for rel, _ in stale)
    for rel, digest in zip(todo, _hash_files(top, todo), strict=True):
        hashes[bisect_left(ordered, rel)] = digest
    done = cast("list[str]", hashes)  # every file is either unchanged (cached) or in todo
    with _gc_paused():
        sizes = [stat[0] for _, stat in files]
        entries = list(map(_make_entry, zip(ordered, done, sizes, strict=True)))
        tree_digest = hash_bytes(_manifest(entries))
        if packed is not None:  # (the keys of a sorted walk fit as they did unsorted)
            sorted_keys = array("q", chain.from_iterable(map(itemgetter(1), files)))
            table = _TreeTable(
                tree_digest, signature, "\0".join(ordered), sorted_keys.tobytes(), "\n".join(done)
            )
            cache._remember_tree(key, table)
    return tree_digest, entries


_encode_json_str = json.encoder.encode_basestring_ascii  # what json.dumps uses for strings


def _manifest(ordered: Iterable[TreeEntry]) -> bytes:
    body = ",".join(
        [
            f'{{"hash":{_encode_json_str(e.hash)},"path":{_encode_json_str(e.path)},'
            f'"size":{e.size:d}}}'
            for e in ordered
        ]
    )
    return f'{{"entries":[{body}],"hash":"{HASH_NAME}","type":"tree"}}'.encode()


def tree_manifest(entries: Iterable[TreeEntry]) -> bytes:
    """The canonical bytes of a folder's manifest; its BLAKE3 is the folder's hash.

    Compact JSON with sorted keys and ASCII escapes, the entries sorted by path (code point
    order), exactly ``json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()`` of
    ``{"entries": [{"hash": HASH, "path": PATH, "size": SIZE}, ...], "hash": "blake3",
    "type": "tree"}`` (SIZE an int), built directly rather than through ``json``. Changing it
    changes every folder's hash: bump ``_TREE_CACHE_MAGIC`` with it.
    """
    return _manifest(sorted(entries, key=itemgetter(0)))

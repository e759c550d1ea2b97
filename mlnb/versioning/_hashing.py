"""Content hashes: BLAKE3 of files (chunked or memory-mapped, never read whole into
memory), of folders (the hash of their sorted manifest), and of DataFrames (every row and
column, the dtypes and the index). A stat cache skips re-reading files that did not change.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blake3 import blake3

__all__ = [
    "HASH_NAME",
    "StatCache",
    "TreeEntry",
    "fingerprint_dataframe",
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


class StatCache:
    """(path, size, mtime, inode) -> hash, kept in ``<home>/cache/stat.sqlite``.

    A file whose size, modification time and inode are unchanged is not read again.
    Loaded once into memory; new entries are written in one transaction.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, tuple[int, int, int, str]] | None = None
        self._dirty: dict[str, tuple[int, int, int, str]] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, tuple[int, int, int, str]]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None and self.path.exists():
                try:
                    with sqlite3.connect(self.path) as conn:
                        for row in conn.execute("SELECT path, size, mtime, inode, hash FROM stat"):
                            self._entries[row[0]] = (row[1], row[2], row[3], row[4])
                    conn.close()
                except sqlite3.DatabaseError:
                    self._entries = {}  # a damaged cache is only a slower re-hash
        return self._entries

    def lookup(self, key: str, st: os.stat_result) -> str | None:
        found = self._load().get(key)
        if found is not None and found[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return found[3]
        return None

    def remember(self, key: str, st: os.stat_result, digest: str) -> None:
        value = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
        with self._lock:
            self._load()[key] = value
            self._dirty[key] = value

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            rows = [(k, *v) for k, v in self._dirty.items()]
            self._dirty.clear()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime INTEGER, inode INTEGER, hash TEXT)"
            )
            conn.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?)", rows)
        conn.close()

    def hash(self, path: Path, st: os.stat_result | None = None) -> str:
        st = st or path.stat()
        key = str(path)
        digest = self.lookup(key, st)
        if digest is None:
            digest = hash_file(path)
            self.remember(key, st, digest)
        return digest


@dataclass(frozen=True)
class TreeEntry:
    path: str  # relative, with "/" separators
    hash: str
    size: int


def _walk(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    out: list[tuple[str, Path, os.stat_result]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                rel = f"{prefix}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                elif entry.is_file():
                    out.append((rel, Path(entry.path), entry.stat()))
    out.sort(key=lambda item: item[0])
    return out


def hash_tree(root: Path, cache: StatCache | None = None) -> tuple[str, list[TreeEntry]]:
    """Hash of a folder (= hash of its manifest) and the manifest's entries.

    Files are hashed by a thread pool (BLAKE3 releases the GIL); unchanged files come from
    the stat cache.
    """
    cache = cache or StatCache(None)
    files = _walk(root)
    todo = [(rel, path, st) for rel, path, st in files if cache.lookup(str(path), st) is None]
    if todo:
        workers = min(32, (os.cpu_count() or 2) * 4, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlnb-hash") as pool:
            for (_, path, st), digest in zip(
                todo, pool.map(lambda item: hash_file(item[1]), todo), strict=True
            ):
                cache.remember(str(path), st, digest)
    entries = [
        TreeEntry(rel, cache.lookup(str(path), st) or hash_file(path), st.st_size)
        for rel, path, st in files
    ]
    return hash_bytes(tree_manifest(entries)), entries


def tree_manifest(entries: Iterable[TreeEntry]) -> bytes:
    """The canonical bytes of a folder's manifest (sorted by path)."""
    doc = {
        "type": "tree",
        "hash": HASH_NAME,
        "entries": [
            {"path": e.path, "hash": e.hash, "size": e.size}
            for e in sorted(entries, key=lambda e: e.path)
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def fingerprint_dataframe(df: Any) -> str:
    """Full-content fingerprint of a pandas DataFrame: every value of every row and column,
    the column names and dtypes, and the index. Changing one cell changes it."""
    import pandas as pd

    hasher = blake3()
    header = {
        "kind": "pandas.DataFrame",
        "shape": list(df.shape),
        "columns": [str(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "index": [str(df.index.dtype), [str(n) for n in df.index.names]],
    }
    hasher.update(json.dumps(header, sort_keys=True).encode())
    try:
        rows = pd.util.hash_pandas_object(df, index=True, categorize=True)
    except TypeError:
        # Cells holding unhashable objects (lists, dicts): hash their text instead.
        text = df.astype({c: str for c, t in df.dtypes.items() if t.kind == "O"})
        rows = pd.util.hash_pandas_object(text, index=True, categorize=True)
    hasher.update(rows.to_numpy().tobytes())
    return hasher.hexdigest()

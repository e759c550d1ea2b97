"""Names, versions and the runs that read or wrote them (``<root>/.mlnb/versions.db``).

A version is identified by its content hash; its number (1, 2, …) is its place in the
order versions of that name were first recorded, so records from several clones merge
without conflicts. An edge says that a run read (``input``) or wrote (``output``) a version.

Many processes (notebooks, pipeline workers) write here at once: the file is in WAL
journal mode (readers never block the writer), every write is one ``BEGIN IMMEDIATE``
transaction (a read-modify-write such as :meth:`Registry.update_meta` cannot lose a
concurrent update), and a writer waits up to :data:`BUSY_TIMEOUT` seconds for another
instead of failing with "database is locked". A full disk raises
:class:`~mlnb.exceptions.DiskFullError` naming the folder; the transaction is rolled back.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlnb._disk import disk_full_error, is_disk_full
from mlnb.exceptions import InvalidValueError, VersionNotFoundError

__all__ = ["Edge", "Registry", "VersionRecord", "parse_ref"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    object TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER,
    schema TEXT,
    path TEXT,
    created_at REAL NOT NULL,
    run_id TEXT,
    meta TEXT,
    PRIMARY KEY (name, hash)
);
CREATE TABLE IF NOT EXISTS edges (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, name, hash, role)
);
CREATE INDEX IF NOT EXISTS edges_by_version ON edges (name, hash);
CREATE INDEX IF NOT EXISTS versions_by_hash ON versions (hash);
"""

#: seconds a connection waits for another process's write before giving up
BUSY_TIMEOUT = 30.0

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


@dataclass
class VersionRecord:
    """One version of a name: what ``mlnb.version`` returns."""

    name: str
    hash: str
    object: str  # store key to restore it (the hash itself, except for values from memory)
    kind: str  # file, folder, dataframe, series, array, sparse, arrays, config, model
    size: int | None
    created_at: float
    schema: dict[str, Any] | None = None
    path: str | None = None  # where it came from, relative to the project root when inside
    run_id: str | None = None  # the run that first recorded it
    meta: dict[str, Any] = field(default_factory=dict)
    number: int = 0  # 1-based place among the versions of ``name``

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"

    @property
    def short(self) -> str:
        return self.hash[:12]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Edge:
    run_id: str
    name: str
    hash: str
    role: str  # input | output
    created_at: float


def check_version_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidValueError(
            f"version name {name!r} is not allowed: use letters, digits and . _ - / "
            "(starting with a letter or digit, at most 200 characters, no '@')."
        )
    return name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``name``, ``name@3``, ``name@latest`` or ``name@<hash prefix>`` -> (name, version)."""
    name, sep, version = ref.partition("@")
    if sep and not version:
        raise InvalidValueError(f"{ref!r} has an empty version; write NAME@3 or NAME@<hash>.")
    return check_version_name(name), (version or None)


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _conn(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; with ``write``, inside one transaction that holds the write lock
        from its start (committed when the block ends, rolled back on an error)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                conn.executescript(_SCHEMA)
            except (sqlite3.Error, OSError) as exc:
                conn.close()
                if write or not is_disk_full(exc):
                    raise
                conn = self._read_only()  # a full disk: reading needs no space
            try:
                with conn:
                    if write:
                        conn.execute("BEGIN IMMEDIATE")
                    yield conn
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            if is_disk_full(exc):  # the transaction was rolled back: nothing half-recorded
                doing = "to record versions in" if write else "to read"
                raise disk_full_error(self.path.parent, None, f"{doing} {self.path.name}") from exc
            raise

    def _read_only(self) -> sqlite3.Connection:
        """A connection that reads the database file as it is, without the shared-memory
        and WAL files (which need space to create): for reading on a full disk. Only when
        no WAL holds writes not yet in the file, else the disk-full error stands."""
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise sqlite3.OperationalError("database or disk is full")
        return sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)

    # -- writing ---------------------------------------------------------------------
    def add(self, record: VersionRecord) -> VersionRecord:
        """Record a version (an existing (name, hash) keeps its first record, and is only
        read: versioning unchanged content again writes nothing, even on a full disk)."""
        try:
            return self.get(record.name, record.hash)
        except VersionNotFoundError:
            pass
        with self._conn(write=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.hash,
                    record.object,
                    record.kind,
                    record.size,
                    json.dumps(record.schema) if record.schema is not None else None,
                    record.path,
                    record.created_at,
                    record.run_id,
                    json.dumps(record.meta),
                ),
            )
        return self.get(record.name, record.hash)

    def add_edge(self, run_id: str, name: str, digest: str, role: str) -> None:
        with self._conn(write=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO edges VALUES (?, ?, ?, ?, ?)",
                (run_id, name, digest, role, time.time()),
            )

    def claim(self, name: str, digest: str, run_id: str) -> bool:
        """``run_id`` created the version ``name``/``digest`` unless another run already
        did (the first run to see a content is its creator); True when it is now the one."""
        with self._conn() as conn:
            changed = conn.execute(
                "UPDATE versions SET run_id = ? WHERE name = ? AND hash = ? AND run_id IS NULL",
                (run_id, name, digest),
            )
        return changed.rowcount > 0

    def rename_run(self, old: str, new: str) -> int:
        """A run recorded under the journal's local id got its MLflow id: follow it."""
        if not self.path.exists():
            return 0
        with self._conn(write=True) as conn:
            changed = conn.execute("UPDATE versions SET run_id = ? WHERE run_id = ?", (new, old))
            moved = conn.execute(
                "UPDATE OR IGNORE edges SET run_id = ? WHERE run_id = ?", (new, old)
            )
            return int(changed.rowcount + moved.rowcount)

    def run_ids_like(self, prefix: str) -> list[str]:
        """Run ids starting with ``prefix`` that versions or edges name."""
        if not self.path.exists():
            return []
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT run_id FROM versions WHERE run_id LIKE ? ESCAPE '\\' "
                "UNION SELECT run_id FROM edges WHERE run_id LIKE ? ESCAPE '\\'",
                (pattern, pattern),
            ).fetchall()
        return sorted(row[0] for row in rows)

    def set_object(self, name: str, digest: str, obj: str) -> None:
        """Point a version at another stored copy of the same content."""
        with self._conn(write=True) as conn:
            conn.execute(
                "UPDATE versions SET object = ? WHERE name = ? AND hash = ?", (obj, name, digest)
            )

    def update_meta(self, name: str, digest: str, **meta: Any) -> None:
        """Merge ``meta`` into the version's metadata (read and written in one transaction,
        so concurrent updates of other keys are kept)."""
        with self._conn(write=True) as conn:
            row = conn.execute(
                "SELECT meta FROM versions WHERE name = ? AND hash = ?", (name, digest)
            ).fetchone()
            if row is None:
                raise VersionNotFoundError(f"{name}@{digest[:12]} is not recorded.")
            merged = {**(json.loads(row[0]) if row[0] else {}), **meta}
            conn.execute(
                "UPDATE versions SET meta = ? WHERE name = ? AND hash = ?",
                (json.dumps(merged), name, digest),
            )

    # -- reading ---------------------------------------------------------------------
    def _records(self, where: str = "", args: tuple[Any, ...] = ()) -> list[VersionRecord]:
        if not self.path.exists():
            return []
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT name, hash, object, kind, size, schema, path, created_at, run_id, meta "
                f"FROM versions {where} ORDER BY name, created_at, hash",
                args,
            ).fetchall()
        out: list[VersionRecord] = []
        numbers: dict[str, int] = {}
        for row in rows:
            numbers[row[0]] = numbers.get(row[0], 0) + 1
            out.append(
                VersionRecord(
                    name=row[0],
                    hash=row[1],
                    object=row[2],
                    kind=row[3],
                    size=row[4],
                    schema=json.loads(row[5]) if row[5] else None,
                    path=row[6],
                    created_at=row[7],
                    run_id=row[8],
                    meta=json.loads(row[9]) if row[9] else {},
                    number=numbers[row[0]],
                )
            )
        return out

    def versions(self, name: str) -> list[VersionRecord]:
        return self._records("WHERE name = ?", (name,))

    def names(self) -> list[str]:
        return sorted({r.name for r in self._records()})

    def all(self) -> list[VersionRecord]:
        return self._records()

    def stored_as(self, digest: str, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(name, object, meta) of every version of content ``digest`` of ``kind``, under
        any name."""
        if not self.path.exists():
            return []
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT name, object, meta FROM versions WHERE hash = ? AND kind = ?",
                (digest, kind),
            ).fetchall()
        return [(row[0], row[1], json.loads(row[2]) if row[2] else {}) for row in rows]

    def get(self, name: str, digest: str) -> VersionRecord:
        for record in self.versions(name):
            if record.hash == digest:
                return record
        raise VersionNotFoundError(f"{name}@{digest[:12]} is not recorded.")

    def resolve(self, ref: str) -> VersionRecord:
        """The record a reference names (see :func:`parse_ref`)."""
        name, version = parse_ref(ref)
        records = self.versions(name)
        if not records:
            known = self.names()
            hint = f" Known names: {', '.join(known[:20])}." if known else ""
            raise VersionNotFoundError(
                f"no versions of {name!r} are recorded here; version it first with "
                f"mlnb.version(..., name={name!r}) or `mlnb pull` them from a remote.{hint}"
            )
        if version is None or version == "latest":
            return records[-1]
        if version.isdigit() and len(version) < 6:
            number = int(version)
            if 1 <= number <= len(records):
                return records[number - 1]
        else:
            matches = [r for r in records if r.hash.startswith(version.lower())]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise VersionNotFoundError(
                    f"{ref!r} matches {len(matches)} versions; give more hex digits."
                )
        listing = ", ".join(f"@{r.number} ({r.short})" for r in records[-10:])
        raise VersionNotFoundError(
            f"{name!r} has no version {version!r}; it has {len(records)}: {listing}. "
            f"See `mlnb versions {name}`."
        )

    def edges(
        self, *, run_id: str | None = None, name: str | None = None, digest: str | None = None
    ) -> list[Edge]:
        if not self.path.exists():
            return []
        clauses, args = [], []
        for column, value in (("run_id", run_id), ("name", name), ("hash", digest)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT run_id, name, hash, role, created_at FROM edges {where} "
                "ORDER BY created_at",
                tuple(args),
            ).fetchall()
        return [Edge(*row) for row in rows]

    # -- exchange with remotes ---------------------------------------------------------
    def import_record(self, data: dict[str, Any]) -> None:
        data = {k: v for k, v in data.items() if k != "number"}
        self.add(VersionRecord(**data))

    def import_edge(self, data: dict[str, Any]) -> None:
        with self._conn(write=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO edges VALUES (?, ?, ?, ?, ?)",
                (data["run_id"], data["name"], data["hash"], data["role"], data["created_at"]),
            )

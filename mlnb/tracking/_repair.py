"""``mlnb doctor --repair``: a broken SQLite store made whole again, with a backup kept.

A store is broken when an MLflow schema migration was interrupted (a kill, a crash, two
first users at once under plain MLflow or an older mlnb) or when an older MLflow made it;
:func:`mlnb.tracking._store.check_store` says which. :func:`repair_store` guarantees:

1. **A backup first.** Before anything else, a consistent copy of the store as it is (its
   WAL included, with SQLite's backup API; a file SQLite cannot read is copied byte for
   byte) is written, fsynced and renamed to ``<db>.backup-<UTC time>``, so a backup by
   that name is always complete. It is kept once the repaired store is in place; when the
   repair fails it is removed again, since the store itself is then unchanged.
2. **All or nothing.** The repaired store is built in ``<db>.repairing-<pid>``, from the
   backup, by MLflow's own migration code: first by upgrading a copy (``_upgrade_db``);
   when that fails (leftover ``_alembic_tmp_*`` tables, columns added twice), by salvage:
   a fresh schema at the revision the store records, every row of every table copied
   into it (from ``_alembic_tmp_<table>`` where the migration had already dropped
   ``<table>``), then upgraded. It is checked (head revision, every table, ``quick_check``,
   no fewer experiments, runs, params or tags than before), switched to WAL, fsynced and
   renamed onto ``<db>``. A failure or a kill at any step leaves ``<db>`` as it was (a
   kill may leave ``<db>.repairing-*`` files, which the next repair removes).
3. **Exclusive.** The whole repair holds the store's lock, and it refuses to replace a
   store another process has open in WAL mode (it would go on writing to the old file).
4. A store SQLite cannot read at all is kept as the backup and replaced by a new, empty
   store; the report says so.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlnb._disk import sync_folder
from mlnb.exceptions import StoreError
from mlnb.tracking import _store
from mlnb.tracking._schema import build_schema, upgrade_schema
from mlnb.tracking._store import (
    MISSING,
    NEWER,
    UNREADABLE,
    StoreStatus,
    check_store,
    connect,
    store_lock,
    store_path,
)

__all__ = ["RepairReport", "describe_status", "repair_store"]

#: tables whose rows a repair must keep (counted before and after)
COUNTED = ("experiments", "runs", "params", "tags", "metrics", "registered_models")
#: of those, the ones no MLflow migration removes rows from
MUST_KEEP = ("experiments", "runs", "params", "tags")


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_store` did."""

    path: Path
    #: none (the store was fine), created, upgraded, salvaged or recreated
    action: str
    before: StoreStatus
    after: StoreStatus
    backup: Path | None = None
    #: rows per table: (before, after)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        if self.action == "none":
            return [f"nothing to repair: {describe_status(self.after)}"]
        if self.action == "created":
            return [f"created  {self.path} ({describe_status(self.after)})"]
        done = {
            "upgraded": "upgraded its schema",
            "salvaged": "rebuilt its schema and copied every row into it",
            "recreated": "replaced it by a new, empty store: SQLite could not read it",
        }[self.action]
        lines = [
            f"backup   {self.backup}  (the store as it was)",
            f"repaired {self.path}: {done} ({self.before.revision or 'no revision'} -> "
            f"{self.after.revision}) in {self.seconds:.1f} s",
        ]
        if self.counts:
            kept = ", ".join(f"{table} {a}->{b}" for table, (a, b) in self.counts.items())
            lines.append(f"rows     {kept}")
        return lines


def describe_status(status: StoreStatus) -> str:
    """The state of a store in a few words, for ``mlnb doctor``."""
    if status.state == MISSING:
        return "not created yet (`mlnb init` or the first run creates it)"
    if status.ready:
        return f"ready: MLflow schema {status.revision}, {status.journal_mode} journal"
    return str(status.error())


def repair_store(uri: str) -> RepairReport:
    """Repair the SQLite store of ``uri`` (see the module's guarantees)."""
    path = store_path(uri)
    if path is None:
        raise StoreError(
            f"{uri} is not a SQLite store; `mlnb doctor --repair` repairs the embedded store "
            "(.mlnb/mlflow.db) and sqlite:/// URIs. For a tracking server, use "
            "`mlflow db upgrade <database URI>` on its database."
        )
    started = time.perf_counter()
    with store_lock(path):
        before = check_store(path)
        if before.state == MISSING:
            created = _store._create(path)
            _store.forget_checked()
            return RepairReport(path, "created", before, created, seconds=created.seconds)
        if before.ready:
            after = _store._switch_to_wal(before) if before.journal_mode != "wal" else before
            return RepairReport(path, "none", before, after)
        if before.state == NEWER:
            raise before.error()
        _store.remove_stale(path, ".repairing-")
        backup = _backup_path(path)
        tmp = path.with_name(f"{path.name}.repairing-{os.getpid()}")
        installed = False
        try:
            _write_backup(path, backup, before)
            action = _rebuild(backup, tmp, before)
            after = check_store(tmp)
            if not after.ready:
                raise StoreError(f"the repaired copy of {path} {after.detail}; {path} was kept.")
            counts = _compare(backup, tmp, action)
            _store.finish(tmp)
            _release(path, backup)
            _store.install(tmp, path)
            installed = True
        except BaseException as exc:
            _store.discard(tmp)
            if not installed:
                _store.discard(backup)  # the store itself is unchanged: it is the truth
            if isinstance(exc, StoreError) or not isinstance(exc, Exception):
                raise
            raise _store.describe_store_failure(exc, path, "repair the tracking store") from exc
    _store.forget_checked()
    return RepairReport(
        path,
        action,
        before,
        check_store(path),
        backup=backup,
        counts=counts,
        seconds=time.perf_counter() - started,
    )


def _backup_path(path: Path) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.backup-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.backup-{stamp}-{n}")
    return candidate


def _write_backup(path: Path, backup: Path, status: StoreStatus) -> None:
    """Copy the store to ``backup``, which appears only once it is complete and on disk."""
    partial = path.with_name(f"{path.name}.repairing-{os.getpid()}.backup")
    try:
        if status.state == UNREADABLE:
            shutil.copyfile(path, partial)
        else:
            _store.copy_database(path, partial)
        _store._fsync(partial)
        os.replace(partial, backup)
        sync_folder(backup.parent)
    finally:
        _store.discard(partial)


def _rebuild(backup: Path, tmp: Path, before: StoreStatus) -> str:
    """Build the repaired store in ``tmp``; returns how (upgraded, salvaged, recreated)."""
    if before.state == UNREADABLE:
        _store.new_empty_store(tmp)
        return "recreated"
    _store.copy_database(backup, tmp)
    try:
        upgrade_schema(tmp)
        if check_store(tmp).ready:
            return "upgraded"
    except Exception as exc:
        if _store.is_disk_full(exc):
            raise
    _store.discard(tmp)
    _salvage(backup, tmp, before.revision)
    upgrade_schema(tmp)
    return "salvaged"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    rows = conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows if not row[0].startswith("sqlite_")}


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    # table_info leaves out generated columns, which cannot be inserted into
    return [row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({_quote(table)})")]


def _source_table(table: str, old_tables: set[str]) -> str | None:
    """Where the rows of ``table`` are in a half-migrated store: the table itself, or the
    copy an interrupted batch migration made after dropping it."""
    if table in old_tables:
        return table
    moved = f"_alembic_tmp_{table}"
    return moved if moved in old_tables else None


def _salvage(source: Path, tmp: Path, revision: str | None) -> None:
    """A fresh schema at ``revision`` in ``tmp`` holding every row of ``source``."""
    build_schema(tmp, revision=revision)
    conn = connect(tmp)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("ATTACH DATABASE ? AS old", (str(source),))
        old_tables = _tables(conn, "old")
        for table in sorted(_tables(conn, "main") - {"alembic_version"}):
            origin = _source_table(table, old_tables)
            if origin is None:
                continue
            have = set(_columns(conn, "old", origin))
            columns = ", ".join(_quote(c) for c in _columns(conn, "main", table) if c in have)
            if columns:
                conn.execute(
                    f"INSERT OR REPLACE INTO main.{_quote(table)} ({columns}) "
                    f"SELECT {columns} FROM old.{_quote(origin)}"
                )
        conn.commit()
        conn.execute("DETACH DATABASE old")
    finally:
        conn.close()


def _count(conn: sqlite3.Connection, schema: str, table: str | None) -> int:
    if table is None:
        return 0
    return int(conn.execute(f"SELECT count(*) FROM {schema}.{_quote(table)}").fetchone()[0])


def _compare(backup: Path, tmp: Path, action: str) -> dict[str, tuple[int, int]]:
    """Rows of the counted tables before and after; raises if the repair lost any."""
    if action == "recreated":
        return {}  # SQLite could not read the old file: there is nothing to count
    conn = connect(tmp)
    try:
        conn.execute("ATTACH DATABASE ? AS old", (str(backup),))
        old_tables, new_tables = _tables(conn, "old"), _tables(conn, "main")
        counts = {
            table: (
                _count(conn, "old", _source_table(table, old_tables)),
                _count(conn, "main", table if table in new_tables else None),
            )
            for table in COUNTED
        }
        conn.execute("DETACH DATABASE old")
    finally:
        conn.close()
    lost = [f"{t} {a}->{b}" for t, (a, b) in counts.items() if t in MUST_KEEP and b < a]
    if lost:
        raise StoreError(
            f"the repaired copy of the store would lose rows ({', '.join(lost)}), so the "
            "store was not changed; please report this to mlnb."
        )
    return {t: c for t, c in counts.items() if c != (0, 0)}


def _release(path: Path, backup: Path) -> None:
    """Make sure nobody else has the store open in WAL mode and that its WAL is folded in,
    so no -wal file of the old store can outlive it."""
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode == "wal":
                mode = str(conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]).lower()
                if mode == "wal":
                    raise sqlite3.OperationalError("database is locked")
            else:
                conn.execute("BEGIN EXCLUSIVE")
                conn.rollback()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            return  # an unreadable file: nothing in it to fold in
        raise StoreError(
            f"{path} is in use by another process (a notebook kernel, `mlnb ui`, a pipeline "
            f"or a service); stop it and run `{_store.REPAIR_COMMAND}` again. The store was "
            "not changed."
        ) from None

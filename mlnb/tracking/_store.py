"""The SQLite tracking store (``.mlnb/mlflow.db``, or any ``sqlite:///`` URI): whole or absent.

MLflow creates a SQLite store by running about 1,700 DDL statements (its initial tables,
then every alembic migration) on the file itself, outside a transaction for most of them
and without a lock across processes; a kill, a crash or a second first user in the middle
leaves a store no later command can open (``table _alembic_tmp_experiments already
exists``, ``duplicate column name``). mlnb makes it first, before MLflow opens the URI
(:func:`ensure_store`, called by ``configure_mlflow`` and wherever a client is built), and
guarantees:

1. **All or nothing.** The store is built in ``<db>.creating-<pid>``, checked (schema at
   MLflow's head revision, every table there, SQLite ``quick_check``), switched to WAL,
   fsynced, then renamed onto ``<db>`` (``os.replace``, atomic) and the folder fsynced.
   ``<db>`` therefore either does not exist or is a complete store; a kill at any point
   leaves at most a ``.creating-*`` file, removed by the next creator. The build is a copy
   of an empty store of the same MLflow schema kept in mlnb's cache folder
   (``store-mlflow-<version>-<revision>.db``, made once per machine by MLflow's own
   ``_initialize_tables``, the same all-or-nothing way), so it takes milliseconds; without
   a writable cache folder MLflow's code builds it in place of the copy (seconds).
2. **One creator.** Creation, WAL conversion and repair hold an exclusive ``flock`` on
   ``<db>.lock``; the kernel drops it when its holder dies (kill -9 included). Other
   processes wait on it (at most :data:`LOCK_TIMEOUT` seconds, then a clear error), then
   find the store made.
3. **Checked once per process.** The first use of a URI opens the file read-only, without
   the lock, and reads its schema revision and tables; later uses cost one ``stat`` (a few
   microseconds; the check runs again only when the file was replaced or removed).
4. **Broken stores are never touched by a normal command.** A store half-migrated, or
   migrated by an older MLflow, raises :class:`~mlnb.exceptions.StoreNeedsRepairError`, one
   line naming ``mlnb doctor --repair`` (:mod:`mlnb.tracking._repair`: keeps a backup, then
   rebuilds the same way, all or nothing). A store from a newer MLflow, a full disk or an
   unwritable folder raise :class:`~mlnb.exceptions.StoreError` naming the fix; nothing is
   changed on disk by a failure.
5. **Many writers.** The store is in WAL journal mode (set at creation; an existing store
   in another mode is switched on first use): readers never block the writer. MLflow gives
   every session ``PRAGMA busy_timeout = 20000``, so concurrent writers wait their turn
   instead of failing; mlnb's own connections use a 30 s timeout. WAL needs every process
   to be on the same host (not a network file system shared by several machines).

MLflow's "Creating initial MLflow database tables" and alembic's INFO lines are silenced
while mlnb creates a store, so they never land in a notebook cell.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from mlnb._disk import error_chain, is_disk_full, sync_folder
from mlnb._text import first_line
from mlnb.exceptions import StoreError, StoreNeedsRepairError
from mlnb.tracking._schema import build_schema, cache_dir, schema

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: creation is still all or nothing
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "REPAIR_COMMAND",
    "StoreStatus",
    "check_store",
    "connect",
    "copy_database",
    "describe_store_failure",
    "discard",
    "ensure_store",
    "finish",
    "forget_checked",
    "install",
    "is_disk_full",
    "new_empty_store",
    "remove_stale",
    "store_lock",
    "store_path",
]

#: the one command that repairs a broken store (named in every error about one)
REPAIR_COMMAND = "mlnb doctor --repair"
#: seconds a process waits for another one creating or repairing the store
LOCK_TIMEOUT = 300.0
#: SQLite busy timeout of mlnb's own connections to the store, in seconds
BUSY_TIMEOUT = 30.0

#: states of a store file (see :func:`check_store`)
MISSING, READY, OUTDATED, HALF_MIGRATED, NEWER, UNREADABLE = (
    "missing",
    "ready",
    "outdated",
    "half-migrated",
    "newer",
    "unreadable",
)
_SIDECARS = ("-wal", "-shm", "-journal")
_TMP_PREFIX = "_alembic_tmp_"


@dataclass(frozen=True)
class StoreStatus:
    """What :func:`check_store` found in a store file."""

    path: Path
    state: str
    #: MLflow schema (alembic) revision recorded in the file, None when there is none
    revision: str | None = None
    #: the revision this MLflow needs
    head: str = ""
    journal_mode: str | None = None
    #: why the store is not ready, as a clause for messages ("it is half-migrated (…)")
    detail: str = ""
    #: tables left by an interrupted migration (``_alembic_tmp_*``)
    leftovers: tuple[str, ...] = ()
    tables: frozenset[str] = field(default=frozenset(), repr=False)
    #: set by :func:`ensure_store` when this call created the store, with its duration
    created: bool = False
    seconds: float = 0.0

    @property
    def ready(self) -> bool:
        return self.state == READY

    def error(self) -> StoreError:
        """The one-line error for a store that cannot be used as it is."""
        where = f"the MLflow store {self.path}"
        if self.state == NEWER:
            return StoreError(
                f"{where} has schema revision {self.revision}, unknown to this MLflow "
                f"(MLflow {schema().mlflow_version}): a newer MLflow made it. Upgrade MLflow "
                "(pip install -U mlflow) or point MLFLOW_TRACKING_URI at another store."
            )
        # the fix first: callers may shorten a long message
        return StoreNeedsRepairError(f"{where} needs `{REPAIR_COMMAND}`: {self.detail}.")


def store_path(uri: str) -> Path | None:
    """The file of a SQLite tracking URI, or None for other stores (and in-memory ones).

    Parsed as SQLAlchemy parses it (``sqlite:///relative.db``, ``sqlite:////abs.db``, a
    ``?query`` such as ``?timeout=30`` ignored), without importing SQLAlchemy."""
    if not uri.startswith("sqlite://"):
        return None
    rest = uri[len("sqlite://") :]
    if not rest.startswith("/"):
        return None  # a host part: not a file SQLAlchemy would open
    database, _, query = rest[1:].partition("?")
    database = unquote(database)
    options = dict(item.partition("=")[::2] for item in query.split("&") if item)
    if database in {"", ":memory:"} or options.get("uri") in {"true", "1"}:
        return None
    return Path(os.path.abspath(database))


# -- reading a store --------------------------------------------------------------------
def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A sqlite3 connection to ``path`` with mlnb's busy timeout (read-only: never creates
    the file)."""
    if read_only:
        target = f"{path.resolve().as_uri()}?mode=ro"
        return sqlite3.connect(target, uri=True, timeout=BUSY_TIMEOUT)
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT)


def check_store(path: Path) -> StoreStatus:
    """Read what state the store file at ``path`` is in; changes nothing."""
    known = schema()
    head, expected = known.head, known.tables
    if not path.exists() or path.stat().st_size == 0:
        return StoreStatus(path, MISSING, head=head)
    try:
        conn = connect(path, read_only=True)
        try:
            tables = frozenset(
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
            versions: list[str] | None = None
            if "alembic_version" in tables:
                rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
                versions = [str(row[0]) for row in rows]
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        text = first_line(exc)
        if "not a database" in text or "malformed" in text:
            return StoreStatus(
                path, UNREADABLE, head=head, detail=f"SQLite cannot read it ({text})"
            )
        raise describe_store_failure(exc, path, "read the tracking store") from exc
    return _classify(path, head, expected, tables, versions, mode)


def _classify(
    path: Path,
    head: str,
    expected: frozenset[str],
    tables: frozenset[str],
    versions: list[str] | None,
    mode: str,
) -> StoreStatus:
    leftovers = tuple(sorted(t for t in tables if t.startswith(_TMP_PREFIX)))
    mlflow_tables = {t for t in tables if not t.startswith(("sqlite_", "alembic_"))} & (
        expected | {t[len(_TMP_PREFIX) :] for t in leftovers}
    )
    revision = versions[0] if versions and len(versions) == 1 else None
    status = StoreStatus(path, READY, revision, head, mode, leftovers=leftovers, tables=tables)
    if not mlflow_tables and not leftovers and not versions:
        # no MLflow table (an empty file, or only the user's own tables): not made yet
        return replace(status, state=MISSING)
    if versions is not None and len(versions) > 1:
        detail = f"it records {len(versions)} schema revisions ({', '.join(versions)})"
        return replace(status, state=HALF_MIGRATED, detail=detail)
    if revision is None:
        detail = "it is half-migrated (MLflow's tables but no schema revision recorded)"
        return replace(status, state=HALF_MIGRATED, detail=detail)
    if revision != head and revision not in schema().revisions:
        return replace(status, state=NEWER)
    if leftovers:
        detail = (
            f"it is half-migrated (leftover table {', '.join(leftovers)} of an interrupted "
            "schema migration)"
        )
        return replace(status, state=HALF_MIGRATED, detail=detail)
    if revision != head:
        detail = (
            f"its schema revision {revision} is older than MLflow "
            f"{schema().mlflow_version}'s {head} (an older MLflow made it, or its migration "
            "was interrupted)"
        )
        return replace(status, state=OUTDATED, detail=detail)
    missing = sorted(expected - tables)
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        detail = f"it is half-migrated (tables missing: {shown})"
        return replace(status, state=HALF_MIGRATED, detail=detail)
    return status


# -- making a store ---------------------------------------------------------------------
#: URI -> (device and inode of its file when checked, what was found)
_checked: dict[str, tuple[tuple[int, int], StoreStatus]] = {}
_thread_lock = threading.RLock()


def forget_checked() -> None:
    """Forget which stores this process has checked (after a repair, in tests)."""
    with _thread_lock:
        _checked.clear()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def ensure_store(uri: str) -> StoreStatus | None:
    """Make sure the SQLite store of ``uri`` exists, complete and current (creating it if
    needed, all or nothing); None for URIs that are not a SQLite file.

    Raises :class:`StoreNeedsRepairError` for a broken store, :class:`StoreError` when the
    store cannot be made (full disk, unwritable folder) or comes from a newer MLflow.
    """
    seen = _checked.get(uri)
    if seen is not None and seen[0] == _identity(seen[1].path):
        return seen[1]  # checked before, and still the same file
    path = store_path(uri)
    if path is None:
        return None
    with _thread_lock:
        _install_log_filter()
        status = check_store(path)
        if status.state == MISSING or (status.ready and status.journal_mode != "wal"):
            with store_lock(path):
                status = check_store(path)  # another process may have made it meanwhile
                if status.state == MISSING:
                    status = _create(path)
                elif status.ready and status.journal_mode != "wal":
                    status = _switch_to_wal(status)
        if not status.ready:
            raise status.error()
        identity = _identity(path)
        if identity is not None:
            _checked[uri] = (identity, replace(status, created=False, seconds=0.0))
        return status


@contextlib.contextmanager
def store_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock of the store at ``path`` (``<db>.lock``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    try:
        fh = lock_path.open("a+")
    except OSError as exc:
        raise describe_store_failure(exc, path, "lock the tracking store") from exc
    with fh:
        if fcntl is not None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        fh.seek(0)
                        holder = fh.read().strip() or "another process"
                        raise StoreError(
                            f"{holder} has held the lock {lock_path} for more than "
                            f"{timeout:.0f} s while creating or repairing the store; wait "
                            "for it to finish or stop it, then try again."
                        ) from None
                    time.sleep(0.05)
        with contextlib.suppress(OSError):  # who holds it, for the message above
            fh.seek(0)
            fh.truncate()
            fh.write(f"process {os.getpid()}")
            fh.flush()
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _create(path: Path) -> StoreStatus:
    """Build the store next to ``path`` and rename it into place (call under the lock)."""
    started = time.perf_counter()
    remove_stale(path, ".creating-")
    tmp = path.with_name(f"{path.name}.creating-{os.getpid()}")
    try:
        if path.exists() and path.stat().st_size > 0:
            copy_database(path, tmp)  # only the user's own tables: keep them
            build_schema(tmp)
        else:
            new_empty_store(tmp)
        status = check_store(tmp)
        if not status.ready:
            raise StoreError(f"MLflow's schema code left the new store {status.detail}.")
        finish(tmp)
        install(tmp, path)
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, StoreError):
            raise
        if isinstance(exc, Exception):
            raise describe_store_failure(exc, path, "create the tracking store") from exc
        raise
    return replace(check_store(path), created=True, seconds=time.perf_counter() - started)


def new_empty_store(path: Path) -> None:
    """An empty store of this MLflow's schema at ``path`` (a temporary file): a copy of the
    cached template, or MLflow's own build when there is no usable cache."""
    template = _template()
    if template is not None:
        shutil.copyfile(template, path)
    else:
        build_schema(path)


def _template() -> Path | None:
    """An empty store of this MLflow's schema, built once per machine the same way (all or
    nothing, under its own lock): copying it makes a new store in milliseconds instead of
    MLflow's seconds of migrations. None when the cache folder cannot be written."""
    known = schema()
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        template = folder / f"store-mlflow-{known.mlflow_version}-{known.head}.db"
        if template.is_file() and check_store(template).ready:
            return template
        with store_lock(template):
            if template.is_file() and check_store(template).ready:
                return template
            remove_stale(template, ".creating-")
            tmp = template.with_name(f"{template.name}.creating-{os.getpid()}")
            try:
                build_schema(tmp)
                if not check_store(tmp).ready:
                    return None
                _fsync(tmp)
                install(tmp, template)
            finally:
                discard(tmp)
        return template
    except (OSError, sqlite3.Error, StoreError):
        return None  # build the store itself instead


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite file ``source`` (its WAL included) at ``target``."""
    discard(target)
    src = connect(source, read_only=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def finish(path: Path) -> None:
    """Check the new file, switch it to WAL, and write it to disk."""
    conn = connect(path)
    try:
        verdict = " ".join(str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall())
        if verdict != "ok":
            raise StoreError(f"the new store {path} failed SQLite's check: {verdict}.")
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
    finally:
        conn.close()  # the last connection checkpoints and removes the -wal file
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _fsync(path)


def install(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` onto ``path``: atomic, durable once the folder is synced.
    A -wal, -shm or -journal file of an earlier ``path`` must not outlive it (SQLite would
    apply it to the new file), so they go first."""
    for suffix in _SIDECARS:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, path)
    sync_folder(path.parent)


def discard(path: Path) -> None:
    """Remove ``path`` and its SQLite side files, if any."""
    for suffix in ("", *_SIDECARS):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def remove_stale(path: Path, marker: str) -> None:
    """Remove ``<db><marker>*`` files left by a killed creator or repair (under the lock,
    nobody else is writing one)."""
    for stale in path.parent.glob(f"{path.name}{marker}*"):
        discard(stale)


def _switch_to_wal(status: StoreStatus) -> StoreStatus:
    """WAL for a store made without it (by MLflow itself or an older mlnb): best effort,
    another process in the middle of a write just means trying again next time."""
    try:
        conn = connect(status.path)
        try:
            conn.execute("PRAGMA busy_timeout = 2000")
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        finally:
            conn.close()
    except sqlite3.Error:
        return status
    return replace(status, journal_mode=mode)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- errors -----------------------------------------------------------------------------


def describe_store_failure(exc: BaseException, path: Path, doing: str) -> StoreError:
    """One line for a failure of the disk or the folder under the store."""
    if is_disk_full(exc):
        return StoreError(
            f"no space left on the disk holding {path.parent} to {doing}; free some space "
            "(a new store needs about 1 MB) and run the command again. The store was not "
            "changed."
        )
    for item in error_chain(exc):
        code = getattr(item, "errno", None)
        text = str(item).lower()
        if (
            code in {errno.EACCES, errno.EPERM, errno.EROFS}
            or "readonly" in text
            or ("unable to open" in text)
        ):
            return StoreError(
                f"cannot write in {path.parent} to {doing} ({first_line(item)}); make the "
                "folder writable, or point MLFLOW_TRACKING_URI at a store you can write."
            )
    return StoreError(f"could not {doing} {path}: {first_line(exc)}.")


class _DropDatabaseErrorDumps(logging.Filter):
    """MLflow logs every SQLite OperationalError with a full traceback before raising it;
    mlnb turns the raised error into one line of its own (``describe_error``), so the dump
    would only land in the notebook cell as noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SQLAlchemy database error")


_filter = _DropDatabaseErrorDumps()


def _install_log_filter() -> None:
    logger = logging.getLogger("mlflow.store.db.utils")
    if _filter not in logger.filters:
        logger.addFilter(_filter)

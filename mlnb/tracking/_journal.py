"""The write-ahead journal of tracking writes: what a notebook recorded is never lost.

Contract (each point is tested with real processes in ``tests/tracking/test_journal*.py``):

- **Accepted means journaled.** Every write (run start, params, metrics, tags, dataset inputs,
  artifacts, run end) is put on an in-memory queue in microseconds. A commit thread appends
  what is queued to this process's journal *segment* and fsyncs it once per group-commit
  window (``commit_interval``, 50 ms by default). A kill -9 loses at most the writes of the
  last window; :meth:`Journal.flush` returns only after everything before it is fsynced.
- **Sent in order, with bounded waits.** A sender thread sends committed entries in the order
  they were accepted. The tracking server being down, hung or locked never blocks the
  caller: the sender retries with a back-off while the entries wait in the segment.
- **Exactly once.** What was sent is appended to ``<segment>.sent``. A send repeated after a
  crash (sent, then killed before the mark) changes nothing, because each operation is
  idempotent in MLflow: exact duplicate metric rows are dropped, a param logged again with
  the same value, tags and artifacts overwrite, ``set_terminated`` sets the same status. The
  one operation that is not, creating a run, is made so: the run carries the tag
  ``mlnb.local_id`` and a replay looks it up before creating it again.
- **Offline runs.** A run is created in the journal under a local id (``local-<hex>``); the
  sender creates it in MLflow and maps every later entry to the real id, so a notebook that
  starts with the server down goes on, and ``mlnb sync`` (or the next mlnb process) creates
  the run and replays everything under its real id.
- **Leases.** A process holds an exclusive ``flock`` on ``<segment>.lock`` for as long as it
  lives. A segment whose lock can be taken belongs to a process that died: the next mlnb
  process that opens the store replays what it had not sent, marks its runs that never ended
  as KILLED at the time of their last write, and removes the segment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb._ast import serialize_ast

__all__ = [
    "Journal",
    "ReplayResult",
    "Segment",
    "new_local_id",
    "pending_entries",
    "recover",
    "unsent_runs",
]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCAL_PREFIX = "local-"
#: ops that open a run in a segment; a run opened and never terminated was killed
OPENING_OPS = ("create_run", "adopt_run")


def new_local_id() -> str:
    return LOCAL_PREFIX + uuid.uuid4().hex


def is_local_id(run_id: str) -> bool:
    return run_id.startswith(LOCAL_PREFIX)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- one segment on disk ---------------------------------------------------------------
class Segment:
    """``<name>.jsonl`` (entries), ``<name>.sent`` (ids sent, ``id`` or ``id real_run_id``),
    ``<name>.lock`` (the owner's lease) and ``<name>.files/`` (copies of artifacts)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self.path = folder / f"{name}.jsonl"
        self.sent_path = folder / f"{name}.sent"
        self.lock_path = folder / f"{name}.lock"
        self.files = folder / f"{name}.files"
        self._lock_fh: Any = None

    # the lease
    def acquire(self, blocking: bool) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = self.lock_path.open("a")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                fh.close()
                return False
        self._lock_fh = fh
        return True

    def release(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()  # closing drops the flock
            self._lock_fh = None

    # reading
    def entries(self) -> list[dict[str, Any]]:
        return list(self.iter_entries())

    def iter_entries(self, wanted: Callable[[str], bool] | None = None) -> Iterator[dict[str, Any]]:
        """The entries in order; with ``wanted``, only those whose raw line it accepts (asked
        line by line as the reading goes, so it may depend on what was read before)."""
        try:
            fh = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with fh:
            for line in fh:
                line = line.strip()
                if not line or (wanted is not None and not wanted(line)):
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash mid-write was never acknowledged

    def sent(self) -> dict[str, str | None]:
        """Ids sent, with the real run id for the entries that created a run."""
        out: dict[str, str | None] = {}
        try:
            text = self.sent_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            entry_id, _, real = line.strip().partition(" ")
            if entry_id:
                out[entry_id] = real or None
        return out

    def remove(self) -> None:
        for path in (self.path, self.sent_path):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.files, ignore_errors=True)
        self.lock_path.unlink(missing_ok=True)


def _segments(folder: Path) -> list[Segment]:
    if not folder.is_dir():
        return []
    names = sorted({p.name.rsplit(".", 1)[0] for p in folder.glob("*.lock")})
    names += sorted(
        p.stem for p in folder.glob("*.jsonl") if not (folder / f"{p.stem}.lock").exists()
    )
    return [Segment(folder, name) for name in dict.fromkeys(names)]


def _owner_alive(name: str) -> bool:
    """Whether the process that wrote segment ``name`` (``host-pid-tag``) still runs here."""
    try:
        pid = int(name.rsplit("-", 2)[1])
    except (ValueError, IndexError):
        return False
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def pending_entries(folder: Path) -> int:
    """Entries journaled and not yet sent, in every segment of ``folder``."""
    total = 0
    for segment in _segments(folder):
        sent = segment.sent()
        total += sum(1 for e in segment.entries() if e["id"] not in sent)
    return total


def unsent_runs(folder: Path, uri: str) -> list[dict[str, Any]]:
    """The runs of tracking store ``uri`` that were started (journaled in ``folder``) and not
    yet created in the store: a first run while MLflow is still being imported, or a server
    that is down. Each is a dict with ``run`` (its local id), ``experiment_id``,
    ``run_name`` (None when MLflow is to choose it), ``start_time``, ``status`` and the
    ``params``, ``metrics`` (last value) and ``tags`` journaled for it so far."""
    runs: dict[str, dict[str, Any]] = {}

    def wanted(line: str) -> bool:  # read every 750 ms by the sidebar: decode what matters
        return bool(runs) or "create_run" in line

    for segment in _segments(folder):
        sent = segment.sent()
        for entry in segment.iter_entries(wanted):
            if entry.get("uri") != uri:
                continue
            key = str(entry.get("run") or "")
            if entry.get("op") == "create_run":
                if entry["id"] in sent:
                    continue
                runs[key] = {
                    "run": key,
                    "experiment_id": str(entry.get("experiment_id") or ""),
                    "run_name": entry.get("run_name"),  # None: MLflow names it on creation
                    "start_time": entry.get("start_time") or entry.get("ts"),
                    "end_time": None,
                    "status": "RUNNING",
                    "params": {},
                    "metrics": {},
                    "tags": dict(entry.get("tags") or {}),
                }
            elif key in runs and entry.get("op") == "log_batch":
                run = runs[key]
                run["params"].update({k: str(v) for k, v in entry.get("params", [])})
                run["tags"].update({k: str(v) for k, v in entry.get("tags", [])})
                for name, value, *_ in entry.get("metrics", []):
                    run["metrics"][name] = value
            elif key in runs and entry.get("op") == "set_terminated":
                runs[key]["status"] = entry.get("status") or "FINISHED"
                runs[key]["end_time"] = entry.get("end_time") or entry.get("ts")
    return sorted(runs.values(), key=lambda r: -(r["start_time"] or 0))


# -- sending ---------------------------------------------------------------------------
Send = Callable[[dict[str, Any], dict[str, str]], str | None]
"""Sends one entry with local run ids mapped; returns the real run id of a created run."""
Classify = Callable[[BaseException], str]
"""``"retry"`` (server unreachable, hung or busy: try again later) or ``"reject"``."""


@dataclass
class ReplayResult:
    sent: int = 0
    skipped: int = 0  # already sent by an earlier, interrupted replay
    remaining: int = 0
    killed: int = 0  # runs of dead processes marked KILLED
    segments: int = 0
    error: BaseException | None = None
    rejected: list[str] = field(default_factory=list)


def recover(
    folder: Path,
    send: Send,
    classify: Classify,
    on_created: Callable[[str, str], None] | None = None,
    wait: float = 0.0,
) -> ReplayResult:
    """Replay and remove the segments of processes that died (their lease is free).

    Runs that such a segment opened and never terminated are marked KILLED with the time of
    their last journaled write. Stops at the first entry that must be retried later. A
    segment of a dead process that another process is replaying right now (a kernel's
    hand-off) is waited for up to ``wait`` seconds.
    """
    result = ReplayResult()
    for segment in _segments(folder):
        if not segment.acquire(blocking=False):
            if wait <= 0 or _owner_alive(segment.name):
                continue  # a live process owns it
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and segment.path.exists():
                if segment.acquire(blocking=False):
                    break
                time.sleep(0.1)
            else:
                continue
            if segment._lock_fh is None:
                continue
        try:
            if not segment.path.exists():
                segment.remove()
                continue
            result.segments += 1
            if not _replay_segment(segment, send, classify, on_created, result):
                return result
            segment.remove()
        finally:
            segment.release()
    return result


def _replay_segment(
    segment: Segment,
    send: Send,
    classify: Classify,
    on_created: Callable[[str, str], None] | None,
    result: ReplayResult,
) -> bool:
    entries = segment.entries()
    sent = segment.sent()
    ids = {e["run"]: real for e in entries if (real := sent.get(e["id"]))}
    last_write: dict[str, int] = {}
    opened: dict[str, dict[str, Any]] = {}
    ended: set[str] = set()
    for entry in entries:
        run = entry.get("run")
        if run:
            last_write[run] = entry.get("ts", 0)
            if entry["op"] in OPENING_OPS:
                opened[run] = entry
            elif entry["op"] in ("set_terminated", "delete_run"):
                ended.add(run)
    kills = [
        {
            "id": f"kill-{run}",
            "op": "set_terminated",
            "uri": entry["uri"],
            "run": run,
            "status": "KILLED",
            "end_time": last_write.get(run) or entry.get("ts"),
            "ts": last_write.get(run) or entry.get("ts"),
        }
        for run, entry in opened.items()
        if run not in ended
    ]
    with segment.sent_path.open("a", encoding="utf-8") as marks:
        for index, entry in enumerate(entries + kills):
            if entry["id"] in sent:
                result.skipped += 1
                continue
            try:
                real = send(entry, ids)
            except Exception as exc:
                if classify(exc) == "retry":
                    result.error = exc
                    result.remaining = sum(
                        1 for e in (entries + kills)[index:] if e["id"] not in sent
                    )
                    return False
                result.rejected.append(f"{entry['op']}: {exc}")
                real = None
            if real is not None:
                ids[entry["run"]] = real
                if on_created is not None and entry["run"] != real:
                    on_created(entry["run"], real)
            marks.write(entry["id"] + (f" {real}" if real else "") + "\n")
            marks.flush()
            sent[entry["id"]] = real
            if entry in kills:
                result.killed += 1
            else:
                result.sent += 1
    return True


# -- this process's journal ------------------------------------------------------------
@dataclass
class _Marker:
    committed: threading.Event = field(default_factory=threading.Event)
    sent: threading.Event = field(default_factory=threading.Event)


class Journal:
    """This process's segment, its commit thread and its sender thread (one per folder)."""

    def __init__(
        self,
        folder: Path,
        send: Send,
        classify: Classify,
        *,
        commit_interval: float = 0.05,
        warn: Callable[[str], None] = print,
        on_created: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.folder = folder
        self.send = send
        self.classify = classify
        self.commit_interval = commit_interval
        self.warn = warn
        self.on_created = on_created
        self.clock = clock
        self.sleep = sleep
        host = socket.gethostname().split(".")[0] or "host"
        self.segment = Segment(folder, f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self._queue: deque[dict[str, Any] | tuple[str, str, str, Any] | _Marker] = deque()
        self._wake = threading.Event()
        self._committed: deque[dict[str, Any] | _Marker] = deque()
        self._cond = threading.Condition()
        self._ids: dict[str, str] = {}  # local run id -> real id
        self._created = threading.Condition()
        self._open = False
        self._open_lock = threading.Lock()
        self._fd: Any = None
        self._sent_fh: Any = None
        self._size = 0
        self.offline = False
        self.offline_error: BaseException | None = None
        self._sending = threading.Event()  # set while a send is under way
        self._retry_now = threading.Event()
        self._disk_error: BaseException | None = None
        self._detached = False
        self._attempts = 0  # failed attempts while offline
        self.rejected: list[str] = []
        self.unsent = 0  # entries committed and not yet sent
        self._threads: list[threading.Thread] = []

    # -- the caller's side (any thread) ------------------------------------------------
    def append(self, entry: dict[str, Any]) -> str:
        """Accept one entry (``op``, ``uri``, ``run`` and its fields). Returns its id."""
        entry.setdefault("id", uuid.uuid4().hex)
        entry.setdefault("ts", now_ms())
        self._queue.append(entry)
        if not self._open:
            self._start()
        self._wake.set()
        return str(entry["id"])

    def submit(self, uri: str, run: str, kind: str, item: tuple[Any, ...]) -> None:
        """Accept one ``metric`` (key, value, ts, step), ``param`` or ``tag`` (key, value):
        the hot path of every log call. Consecutive items of one run are journaled and sent
        as one ``log_batch``."""
        self._queue.append((kind, uri, run, item))
        if not self._open:
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def keep_files(self, entry_id: str, files: dict[str, Path]) -> dict[str, str]:
        """Copy (or hard-link) files an entry needs into the segment, before it is appended."""
        kept: dict[str, str] = {}
        for name, src in files.items():
            dst = self.segment.files / entry_id / name / Path(src).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_dir():
                shutil.copytree(src, dst)
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            kept[name] = str(dst)
        return kept

    def flush(self, timeout: float | None = None, wait_sent: bool = True) -> bool:
        """Block until everything appended so far is fsynced, then (``wait_sent``) until it
        is sent, the server is found unreachable, or ``timeout`` runs out.

        Returns True when it was sent; False when it waits in the journal (durable)."""
        if not self._open:
            return True
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        deadline = None if timeout is None else self.clock() + timeout
        tried = -1
        while not marker.committed.wait(0.05):
            if not self._threads[0].is_alive():  # pragma: no cover - interpreter teardown
                return False
            if self._disk_error is not None and (deadline is None or self.clock() >= deadline):
                return False  # the disk is full: the writes wait in memory (said once)
        if not wait_sent:
            return marker.sent.is_set()
        if self.offline:  # try the store again now rather than after the back-off
            tried = self._attempts
            self._retry_now.set()
        while not marker.sent.is_set():
            if self.offline and not self._sending.is_set() and self._attempts > tried:
                return False  # tried again since this flush began: still unreachable
            if deadline is not None and self.clock() >= deadline:
                return False
            marker.sent.wait(0.02)
        return True

    def real_id(self, run: str, timeout: float | None = 0.0) -> str | None:
        """The MLflow id of journaled run ``run`` once created (waits up to ``timeout``)."""
        if not is_local_id(run):
            return run
        deadline = None if timeout is None else self.clock() + timeout
        tried = self._attempts
        if self.offline and timeout:
            self._retry_now.set()  # try the store again now rather than after the back-off
        with self._created:
            while run not in self._ids:
                if self.offline and not self._sending.is_set() and self._attempts > tried:
                    return None
                remaining = None if deadline is None else deadline - self.clock()
                if remaining is not None and remaining <= 0:
                    return None
                self._created.wait(0.05 if remaining is None else min(0.05, remaining))
            return self._ids[run]

    def close(self) -> None:
        """Forget the segment once everything is sent (called at a clean exit)."""
        with self._cond:
            if self._committed or self._queue or self.unsent:
                return
        with self._open_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._sent_fh is not None:
                self._sent_fh.close()
                self._sent_fh = None
            if self._open:
                self.segment.remove()
                self.segment.release()
                self._open = False

    def detach(self) -> None:
        """Stop sending and give up the lease, as this process's exit would: what is left is
        replayed by the next mlnb process (used when a process drops its journal early)."""
        self._detached = True
        self._retry_now.set()
        with self._cond:
            self._cond.notify_all()
        self.segment.release()

    # -- threads -------------------------------------------------------------------------
    def _start(self) -> None:
        with self._open_lock:
            if self._open:
                return
            self.segment.acquire(blocking=True)
            self._fd = os.open(self.segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            self._sent_fh = self.segment.sent_path.open("a", encoding="utf-8")
            serialize_ast()  # the sender imports MLflow's store beside the caller's code
            self._threads = [
                threading.Thread(target=self._commit_loop, name="mlnb-journal", daemon=True),
                threading.Thread(target=self._send_loop, name="mlnb-sender", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            self._open = True

    def _commit_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            # Group commit: wait out the window so one fsync covers what comes meanwhile,
            # unless a flush is waiting.
            if not any(isinstance(item, _Marker) for item in list(self._queue)[-4:]):
                self.sleep(self.commit_interval)
            try:
                self._commit()
                if self._disk_error is not None:
                    self._disk_error = None
                    self.warn(f"the tracking journal in {self.folder} is writable again.")
            except Exception as exc:  # a full disk: keep what is queued, say so once
                if self._disk_error is None:
                    self.warn(
                        f"cannot write the tracking journal in {self.folder} ({exc}); the "
                        "writes are held in memory until it can (free some space there)."
                    )
                self._disk_error = exc
                self.sleep(1.0)
                self._wake.set()

    def _commit(self) -> None:
        taken: list[Any] = []
        while self._queue:
            taken.append(self._queue.popleft())
        batch = _group(taken)
        lines = [
            json.dumps(item, separators=(",", ":"), default=str) + "\n"
            for item in batch
            if not isinstance(item, _Marker)
        ]
        if lines:
            data = "".join(lines).encode("utf-8")
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except Exception:
                self._queue.extendleft(reversed(taken))  # not on disk yet: keep, retry
                with contextlib.suppress(OSError):  # no half line before the next write
                    os.ftruncate(self._fd, self._size)
                raise
            self._size += len(data)
        with self._cond:
            for item in batch:
                if isinstance(item, _Marker):
                    item.committed.set()
                else:
                    self.unsent += 1
                self._committed.append(item)
            self._cond.notify_all()

    def _send_loop(self) -> None:
        backoff = 0.2
        while not self._detached:
            with self._cond:
                while not self._committed and not self._detached:
                    self._cond.wait()
                if self._detached:
                    return
                item = self._committed[0]
            if isinstance(item, _Marker):
                with self._cond:
                    self._committed.popleft()
                item.sent.set()
                continue
            self._sending.set()
            try:
                real = self.send(item, self._ids)
            except Exception as exc:
                self._sending.clear()
                if self.classify(exc) == "retry":
                    self._went_offline(exc)
                    self._attempts += 1
                    self._retry_now.wait(backoff)  # a flush asks for an attempt now
                    self._retry_now.clear()
                    backoff = min(backoff * 2, 5.0)
                    continue
                self.rejected.append(f"{item['op']}: {exc}")
                real = None
            finally:
                self._sending.clear()
            backoff = 0.2
            self._back_online()
            self._mark_sent(item, real)

    def _mark_sent(self, item: dict[str, Any], real: str | None) -> None:
        if real is not None:
            with self._created:
                self._ids[item["run"]] = real
                self._created.notify_all()
            if self.on_created is not None and item["run"] != real:
                with contextlib.suppress(Exception):
                    self.on_created(item["run"], real)
        with contextlib.suppress(Exception):
            self._sent_fh.write(item["id"] + (f" {real}" if real else "") + "\n")
            self._sent_fh.flush()
        with self._cond:
            self._committed.popleft()
            self.unsent -= 1

    def _went_offline(self, exc: BaseException) -> None:
        self.offline_error = exc
        if not self.offline:
            self.offline = True
            self.warn(
                f"cannot reach the tracking store ({_first(exc)}); writes are kept in "
                f"{self.folder} and sent when it is back (or run `mlnb sync`)."
            )
        with self._created:
            self._created.notify_all()

    def _back_online(self) -> None:
        if self.offline:
            self.offline = False
            self.warn(f"the tracking store is back; {self.unsent} journaled write(s) to send.")


# MLflow's per-call limits of log_batch (mlflow.utils.validation)
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
_PLURAL = {"metric": "metrics", "param": "params", "tag": "tags"}


def _group(taken: list[Any]) -> list[dict[str, Any] | _Marker]:
    """Queue items to journal entries: runs of metric/param/tag items of one run become
    ``log_batch`` entries within MLflow's limits; entries and markers keep their place."""
    out: list[dict[str, Any] | _Marker] = []
    current: dict[str, Any] | None = None
    counts = {"metrics": 0, "params": 0, "tags": 0}
    for item in taken:
        if not isinstance(item, tuple):
            current = None
            out.append(item)
            continue
        kind, uri, run, payload = item
        plural = _PLURAL[kind]
        if current is not None and current["run"] == run and current["uri"] == uri:
            full = (
                sum(counts.values()) >= MAX_ENTITIES_PER_BATCH
                or (plural == "params" and counts["params"] >= MAX_PARAMS_PER_BATCH)
                or (plural == "tags" and counts["tags"] >= MAX_TAGS_PER_BATCH)
                or (plural == "params" and any(p[0] == payload[0] for p in current["params"]))
            )
            if full:
                current = None
        if current is None:
            current = {
                "id": uuid.uuid4().hex,
                "ts": now_ms(),
                "op": "log_batch",
                "uri": uri,
                "run": run,
                "metrics": [],
                "params": [],
                "tags": [],
            }
            counts = {"metrics": 0, "params": 0, "tags": 0}
            out.append(current)
        if plural == "tags":  # a tag set twice in one batch keeps its last value
            current["tags"] = [t for t in current["tags"] if t[0] != payload[0]]
            counts["tags"] = len(current["tags"])
        current[plural].append(list(payload))
        counts[plural] += 1
    return out


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]

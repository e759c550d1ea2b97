"""Background writer: metrics, params and tags are queued and written in batches.

``submit`` appends to a deque and returns (a few microseconds); one daemon thread wakes every
``flush_interval`` seconds, or sooner when asked or when a full batch is waiting, groups what
is queued by run and sends it with ``MlflowClient.log_batch``. ``flush()`` blocks until
everything submitted before it has been written (or journaled).

When the server cannot be reached, the batch goes to the durable :class:`Outbox` and the
user sees one warning for the outage; each later write first replays the journal, so the
next successful write catches up in order.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlnb._text import first_line
from mlnb.tracking import _client
from mlnb.tracking._outbox import Outbox

__all__ = ["BatchWriter"]


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


def _warn(message: str) -> None:
    # sys.stderr (not sys.__stderr__): in a kernel it reaches the notebook.
    try:
        print(f"mlnb: warning: {message}", file=sys.stderr, flush=True)
    except Exception:  # pragma: no cover - a closed stream at interpreter exit
        pass


class BatchWriter:
    """One per tracking URI and process."""

    def __init__(
        self,
        uri: str,
        outbox: Outbox,
        flush_interval: float = 1.0,
        warn: Callable[[str], None] = _warn,
    ) -> None:
        self.uri = uri
        self.outbox = outbox
        self.flush_interval = flush_interval
        self._warn = warn
        self._queue: deque[tuple[str, str, Any] | _Flush] = deque()
        self._wake = threading.Event()
        self._offline = False
        self._state_lock = threading.Lock()  # the offline flag and its one warning
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._settle = False
        #: seconds a cell-end flush waits, for the kernel to answer the frontend first
        self.settle = 0.1
        self.rejected: list[str] = []

    # -- the caller's side -------------------------------------------------------------
    def submit(self, run_id: str, kind: str, item: Any) -> None:
        """Queue one ``metric`` (key, value, ts, step), ``param`` or ``tag`` (key, value)."""
        self._queue.append((run_id, kind, item))
        if self._thread is None:
            self._start()
        elif len(self._queue) >= _client.MAX_METRICS_PER_BATCH:
            self._wake.set()

    def request_flush(self) -> None:
        """Ask for a write shortly, without waiting (used at the end of each cell).

        The write starts ``settle`` seconds later, so the kernel sends its reply first
        instead of competing with the writer for the GIL; what is logged meanwhile is
        written in the same batch.
        """
        if self._queue and not self._wake.is_set():
            self._settle = True
            self._wake.set()

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Block until everything queued so far is written or journaled."""
        if self._thread is None or not self._thread.is_alive():
            if not self._queue:
                return True
            self._start()
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    @property
    def offline(self) -> bool:
        return self._offline

    # -- the thread ------------------------------------------------------------------
    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="mlnb-writer", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            if self._settle:
                self._settle = False
                time.sleep(self.settle)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # never let the thread die
                self._warn(f"tracking writer error: {exc}")

    def _drain(self) -> None:
        while self._queue:
            items: list[tuple[str, str, Any]] = []
            markers: list[_Flush] = []
            while self._queue and len(items) < _client.MAX_ENTITIES_PER_BATCH:
                entry = self._queue.popleft()
                if isinstance(entry, _Flush):
                    markers.append(entry)
                    break  # everything before the marker is in ``items``
                items.append(entry)
            if items:
                self._write(items)
            for marker in markers:
                marker.done.set()

    def _write(self, items: list[tuple[str, str, Any]]) -> None:
        by_run: dict[str, dict[str, list[Any]]] = {}
        for run_id, kind, item in items:
            batch = by_run.setdefault(run_id, {"metric": [], "param": [], "tag": []})
            batch[kind].append(item)
        for run_id, batch in by_run.items():
            for chunk in _chunks(batch):
                entry = {"op": "log_batch", "uri": self.uri, "run_id": run_id, **chunk}
                self.send_or_journal(entry)

    def send_or_journal(self, entry: dict[str, Any], files: dict[str, Any] | None = None) -> bool:
        """Send ``entry`` now (after any journaled ones), or journal it. True if sent."""
        if not self._catch_up():
            self.outbox.append(entry, files)
            return False
        try:
            if files:
                entry = {**entry, "files": {k: str(v) for k, v in files.items()}}
            _client.send_entry(entry)
            return True
        except Exception as exc:
            if _client.is_unreachable(exc):
                self._went_offline(exc)
                entry.pop("files", None)
                self.outbox.append(entry, files)
                return False
            if entry["op"] == "log_batch":
                self._isolate(entry, exc)
                return False
            self._reject(f"{entry['op']} for run {entry['run_id']}", exc)
            return False

    def _catch_up(self) -> bool:
        """Replay the journal if it has anything; False while the server is unreachable."""
        if not self.outbox.journal.exists():
            return True
        result = self.outbox.replay(_client.send_entry)
        if result.error is not None:
            if _client.is_unreachable(result.error):
                self._went_offline(result.error)
                return False
            self._reject("a journaled write", result.error)
            return False
        if result.remaining:
            return False  # another process is replaying right now
        with self._state_lock:
            was_offline, self._offline = self._offline, False
        if was_offline:
            self._warn(
                f"tracking server at {self.uri} is back; {result.sent} journaled write(s) sent."
            )
        return True

    def _went_offline(self, exc: BaseException) -> None:
        with self._state_lock:
            was_offline, self._offline = self._offline, True
        if not was_offline:
            self._warn(
                f"cannot reach the tracking server at {self.uri}; writes are kept in "
                f"{self.outbox.folder} and sent when it is back (or run `mlnb sync`)."
            )

    def _isolate(self, entry: dict[str, Any], exc: BaseException) -> None:
        """A batch was refused: send its items one by one to find and report the bad ones."""
        for kind in ("metrics", "params", "tags"):
            for item in entry.get(kind, []):
                single = {
                    "op": "log_batch",
                    "uri": self.uri,
                    "run_id": entry["run_id"],
                    kind: [item],
                }
                try:
                    _client.send_entry(single)
                except Exception as inner:
                    if _client.is_unreachable(inner):
                        self._went_offline(inner)
                        self.outbox.append(single)
                    else:
                        self._reject(f"{kind[:-1]} {item[0]!r}", inner)

    def _reject(self, what: str, exc: BaseException) -> None:
        message = f"the tracking store refused {what}: {first_line(exc)}"
        self.rejected.append(message)
        self._warn(message)


def _chunks(batch: dict[str, list[Any]]) -> list[dict[str, list[Any]]]:
    """Split one run's items into pieces within MLflow's per-call limits."""
    metrics, params, tags = batch["metric"], batch["param"], batch["tag"]
    # Params and tags keep their last value per key (a tag set twice in one batch).
    params = list({k: (k, v) for k, v in params}.values())
    tags = list({k: (k, v) for k, v in tags}.values())
    out: list[dict[str, list[Any]]] = []
    while metrics or params or tags:
        p, params = params[: _client.MAX_PARAMS_PER_BATCH], params[_client.MAX_PARAMS_PER_BATCH :]
        t, tags = tags[: _client.MAX_TAGS_PER_BATCH], tags[_client.MAX_TAGS_PER_BATCH :]
        room = _client.MAX_ENTITIES_PER_BATCH - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        out.append({"metrics": m, "params": p, "tags": t})
    return out


def now_ms() -> int:
    return int(time.time() * 1000)

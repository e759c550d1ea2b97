"""The tracking writes of one process: a :class:`Journal` per project, seen per tracking URI.

``submit`` (metrics, params, tags) and ``send_or_journal`` (runs, artifacts, inputs) hand
writes to the project's write-ahead journal (``mlnb.tracking._journal``), which makes them
durable within the group-commit window and sends them in order from its own thread. Nothing
here waits for the tracking server, except :meth:`BatchWriter.flush` when asked to.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlnb._text import print_warning
from mlnb.tracking import _client
from mlnb.tracking._journal import Journal, ReplayResult, recover

__all__ = ["BatchWriter", "journal_for", "recover_dead"]


_warn = print_warning


def now_ms() -> int:
    return int(time.time() * 1000)


_journals: dict[Path, Journal] = {}
_journals_lock = threading.Lock()
#: called with (local id, real id) when the journal creates a run
_created_hooks: list[Callable[[str, str], None]] = []


def _on_created(local: str, real: str) -> None:
    try:  # versions and lineage recorded while the run had only its local id
        from mlnb.versioning import rename_run

        rename_run(local, real)
    except Exception as exc:  # pragma: no cover - the registry is a bonus here
        _warn(f"could not follow run {local} to {real} in the version registry: {exc}")
    for hook in list(_created_hooks):
        try:
            hook(local, real)
        except Exception as exc:  # pragma: no cover - a hook must not stop the sender
            _warn(f"could not record the id of run {real}: {exc}")


def journal_for(folder: Path, commit_interval: float = 0.05) -> Journal:
    """This process's journal in ``folder`` (one per project)."""
    journal = _journals.get(folder)
    if journal is None:
        with _journals_lock:
            journal = _journals.get(folder)
            if journal is None:
                journal = _journals[folder] = Journal(
                    folder,
                    _client.send_entry,
                    _client.classify,
                    commit_interval=commit_interval,
                    warn=_warn,
                    on_created=_on_created,
                )
    return journal


_recovered: set[Path] = set()


def recover_dead(folder: Path, force: bool = False, wait: float = 0.0) -> ReplayResult:
    """Replay the journal segments of dead processes in ``folder`` and mark their unfinished
    runs KILLED (once per process unless ``force``). Never raises: a failure to reach the
    store is in the result's ``error``."""
    result = ReplayResult()
    if (folder in _recovered and not force) or not folder.is_dir():
        _recovered.add(folder)
        return result
    _recovered.add(folder)
    try:
        result = recover(folder, _client.send_entry, _client.classify, _on_created, wait=wait)
    except Exception as exc:
        _warn(f"could not replay the tracking journal in {folder}: {exc}")
        result.error = exc
        return result
    for rejected in result.rejected:
        _warn(f"the tracking store refused a journaled write ({rejected})")
    return result


class BatchWriter:
    """The journal of a project as seen for one tracking URI."""

    def __init__(self, uri: str, journal: Journal) -> None:
        self.uri = uri
        self.journal = journal

    def submit(self, run_id: str, kind: str, item: Any) -> None:
        """Accept one ``metric`` (key, value, ts, step), ``param`` or ``tag`` (key, value)."""
        self.journal.submit(self.uri, run_id, kind, item)

    def send_or_journal(self, entry: dict[str, Any], files: dict[str, Any] | None = None) -> bool:
        """Accept a run-level write (``op`` and its fields, ``run_id`` or ``run``); files it
        needs are kept with the journal first. Always True: accepted means durable."""
        entry = dict(entry)
        entry["run"] = entry.pop("run_id", None) or entry.get("run")
        entry["uri"] = self.uri
        entry["id"] = uuid.uuid4().hex
        if files:
            entry["files"] = self.journal.keep_files(
                entry["id"], {k: Path(v) for k, v in files.items()}
            )
        self.journal.append(entry)
        return True

    def request_flush(self) -> None:
        """Kept for callers of earlier versions: the journal commits on its own."""

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Block until everything accepted is durable, then until it is sent (up to
        ``timeout``). True when sent."""
        return self.journal.flush(timeout)

    @property
    def offline(self) -> bool:
        return self.journal.offline

    @property
    def rejected(self) -> list[str]:
        return self.journal.rejected

    @property
    def queued(self) -> int:
        return len(self.journal._queue) + self.journal.unsent

"""A durable journal of tracking writes that could not reach the tracking server.

Each entry is one JSON line with a unique id, appended and fsynced before the caller goes
on, so nothing accepted is lost when the process dies. Replaying sends the entries in
order and records the id of each one that went through in ``done.txt`` (also fsynced);
an entry whose id is there is never sent again, so a replay that is interrupted and
started again sends each entry exactly once. Only one process replays at a time (a file
lock); when every entry is done the journal is emptied.

Files an entry needs (artifacts) are copied under ``files/<entry id>/`` when it is written,
so the journal does not depend on the original file still being there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Outbox", "ReplayResult"]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass
class ReplayResult:
    sent: int = 0
    skipped: int = 0  # already sent by an earlier, interrupted replay
    remaining: int = 0
    error: BaseException | None = None


class Outbox:
    """The journal under ``<root>/.mlnb/outbox``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.journal = folder / "journal.jsonl"
        self.done = folder / "done.txt"
        self.files = folder / "files"
        self._lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------
    def append(self, entry: dict[str, Any], files: dict[str, Path] | None = None) -> str:
        """Add one entry; ``files`` maps a name used in the entry to a file to keep."""
        entry_id = uuid.uuid4().hex
        entry = {"id": entry_id, **entry}
        with self._exclusive(blocking=True):
            if files:
                target = self.files / entry_id
                target.mkdir(parents=True, exist_ok=True)
                kept = {}
                for name, src in files.items():
                    # files/<entry id>/<name>/<original name>: an artifact keeps its name
                    dst = target / name / Path(src).name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    if Path(src).is_dir():
                        shutil.copytree(src, dst)
                    else:
                        shutil.copy2(src, dst)
                    kept[name] = str(dst)
                entry["files"] = kept
            line = json.dumps(entry, separators=(",", ":"), default=str) + "\n"
            with self.journal.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        return entry_id

    # -- reading ---------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        out = []
        with self.journal.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    # A line cut short by a crash mid-write was never acknowledged.
                    continue
        return out

    def _done_ids(self) -> set[str]:
        if not self.done.exists():
            return set()
        return {line.strip() for line in self.done.read_text(encoding="utf-8").splitlines()}

    def pending(self) -> list[dict[str, Any]]:
        done = self._done_ids()
        return [e for e in self.entries() if e["id"] not in done]

    def __len__(self) -> int:
        return len(self.pending())

    # -- replaying -------------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self, blocking: bool = False) -> Iterator[bool]:
        """Hold the journal against other threads and processes (appends wait, replays don't)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.folder / ".lock").open("a") as fh:
            if fcntl is None:  # pragma: no cover
                yield True
                return
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False  # another process is replaying right now
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def replay(self, send: Callable[[dict[str, Any]], None]) -> ReplayResult:
        """Send pending entries in order with ``send``; stop at the first failure."""
        result = ReplayResult()
        with self._exclusive() as owner:
            if not owner:
                result.remaining = len(self.pending())
                return result
            entries = self.entries()
            if not entries:
                return result
            done = self._done_ids()
            with self.done.open("a", encoding="utf-8") as done_fh:
                for index, entry in enumerate(entries):
                    if entry["id"] in done:
                        result.skipped += 1
                        continue
                    try:
                        send(entry)
                    except BaseException as exc:
                        result.error = exc
                        result.remaining = sum(1 for e in entries[index:] if e["id"] not in done)
                        return result
                    done_fh.write(entry["id"] + "\n")
                    done_fh.flush()
                    os.fsync(done_fh.fileno())
                    done.add(entry["id"])
                    result.sent += 1
            # Everything went through: start an empty journal. An entry appended since
            # the read above (another thread) is kept.
            self._compact(done)
        return result

    def _compact(self, done: set[str]) -> None:
        keep = [e for e in self.entries() if e["id"] not in done]
        tmp = self.journal.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for entry in keep:
                fh.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal)
        self.done.unlink(missing_ok=True)
        kept_ids = {e["id"] for e in keep}
        if self.files.is_dir():
            for folder in self.files.iterdir():
                if folder.name not in kept_ids:
                    shutil.rmtree(folder, ignore_errors=True)
        if not keep:
            self.journal.unlink(missing_ok=True)

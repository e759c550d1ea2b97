"""Durable appends to the audit files, as group commits.

An :class:`AppendFile` is one append-only JSON-lines file (or a series of them, rotated by
size) written by one thread: :meth:`AppendFile.append` writes a whole batch of lines with
one ``write`` and, in ``fsync`` mode, one ``fdatasync`` (``fsync`` where there is none), so
the cost of making records durable is shared by every request that was waiting. It
guarantees:

- a batch is either wholly in the file or not at all: a failed or short write (disk full)
  is cut back to the last complete batch (``ftruncate``), so what was recorded before stays
  and no torn line is left for the next batch to be glued to;
- a file that was deleted or moved away under the service (``st_nlink == 0``) is not
  written into blindly: the batch goes to a new file in the folder, or fails if the folder
  is gone (the folder is never re-created behind the operator's back);
- a new file's directory entry is synced too (``fsync`` mode), so the file survives a power
  loss, not only its blocks.

:class:`Waiters` hands the outcome of a batch to the requests waiting for it: asyncio
futures are resolved on their own loop with one ``call_soon_threadsafe`` per loop and
batch (not one wake-up per request); ``concurrent.futures`` futures (threads) directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlnb._disk import sync_folder
from mlnb.exceptions import AuditUnavailable

__all__ = ["SYNC_MODES", "AppendFile", "AuditUnavailable", "Waiters", "parse_sync"]

#: what "the record is recorded" means before an answer leaves (``MLNB_AUDIT_SYNC``)
SYNC_MODES = ("fsync", "write", "async")
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def parse_sync(raw: str | None) -> str:
    """``MLNB_AUDIT_SYNC``: ``fsync`` (the default), ``write`` or ``async``; anything else is
    a ``ValueError`` that names the allowed values."""
    value = (raw or "").strip().lower() or "fsync"
    if value not in SYNC_MODES:
        raise ValueError(
            f"MLNB_AUDIT_SYNC={raw!r} is not a known setting; use one of "
            f"{', '.join(SYNC_MODES)} (fsync: nothing answered is lost, even on power loss; "
            "write: survives a crash of the service, not of the machine; async: the last "
            "~50 ms of answers may be lost), or leave it unset for fsync."
        )
    return value


class AppendFile:
    """An append-only file written by one thread; ``name()`` gives the next file's name
    (called again after a rotation or a lost file; a failed write opens the same file
    again, so an outage does not leave a trail of empty files)."""

    def __init__(
        self, folder: Path, name: Callable[[], str], sync: bool, max_bytes: int | None = None
    ) -> None:
        self.folder = folder
        self._name = name
        self.sync = sync
        self.max_bytes = max_bytes
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0
        self._again: Path | None = None  # after a failed write: the same file, not a new one

    def _open(self) -> int:
        path, self._again = self._again or self.folder / self._name(), None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        created = not path.exists()
        fd = os.open(path, flags, 0o644)
        try:
            self._size = os.fstat(fd).st_size
            if created and self.sync:
                sync_folder(self.folder)
        except OSError:
            os.close(fd)
            raise
        self.path, self._fd = path, fd
        return fd

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def append(self, data: bytes) -> None:
        """Write ``data`` (whole lines) and, in sync mode, make it durable; ``OSError`` if
        it could not be, with nothing of ``data`` left in the file."""
        for attempt in (1, 2):
            fd = self._fd if self._fd is not None else self._open()
            start = written = 0
            try:
                # the end now, not as last seen: another worker may append to the same file
                # (feedback.jsonl), and a cut must never take its lines
                start = os.fstat(fd).st_size
                view = memoryview(data)
                while written < len(data):
                    written += os.write(fd, view[written:])
                if self.sync:
                    _datasync(fd)
                lost = os.fstat(fd).st_nlink == 0
            except OSError:
                self._cut(fd, start if written else None)
                raise
            if not lost:
                self._size = start + len(data)
                if self.max_bytes is not None and self._size >= self.max_bytes:
                    self.close()  # the next batch opens the next part
                return
            # deleted or moved away while open: what went there is in no file of the folder
            self.close()
            if attempt == 2:
                break
        raise FileNotFoundError(f"the audit files in {self.folder} keep being deleted")

    def _cut(self, fd: int, size: int | None) -> None:
        """Back to ``size`` (the end of the last complete batch; None: nothing of the batch
        was written), then closed: the next batch opens the file again."""
        try:
            if size is not None:
                os.ftruncate(fd, size)
                if self.sync:
                    _datasync(fd)
        except OSError:
            pass  # the file may be gone, or the disk refuse even this; nothing more to do
        self.close()
        self._again = self.path


class Waiters:
    """The futures of one batch, resolved together once the batch is (or is not) durable."""

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        self._threads: list[concurrent.futures.Future[None]] = []

    def add(self, waiter: Any) -> None:
        if isinstance(waiter, asyncio.Future):
            self._by_loop.setdefault(waiter.get_loop(), []).append(waiter)
        elif waiter is not None:
            self._threads.append(waiter)

    def __bool__(self) -> bool:
        return bool(self._by_loop or self._threads)

    def resolve(self, error: BaseException | None = None) -> None:
        for loop, futures in self._by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:
                pass  # that loop is closed: nobody waits any more
        for future in self._threads:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        self._by_loop, self._threads = {}, []


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():  # a request cancelled meanwhile (the client went away)
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

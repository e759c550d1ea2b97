"""The audit log of a service: every prediction, appended as one JSON line, by a writer
thread, to ``<service>/audit/predictions-<start>-<pid>-<part>.jsonl`` (``MLNB_AUDIT_DIR``
elsewhere, ``MLNB_AUDIT=off`` disables it). Files rotate by size (``MLNB_AUDIT_MAX_BYTES``,
64 MiB); the folder can be versioned as a data set for retraining
(``mlnb version DIR/audit``). ``POST /feedback`` labels are appended to ``feedback.jsonl``
and compared with the answers: live accuracy. In shadow mode the challenger's answer is a
second line of the request (``"kind": "shadow"``), written once the challenger answered.

What an answer promises about its record is ``MLNB_AUDIT_SYNC``:

- ``fsync`` (the default): the record is written and ``fdatasync``-ed before the answer
  (prediction or feedback) leaves. Nothing answered is lost, by a crash of the service
  (``kill -9``) or of the machine (power loss); only requests not yet answered can be.
  Requests waiting at the same moment share one write and one sync (group commit), so
  throughput holds under concurrency.
- ``write``: the record is handed to the operating system (``write``) before the answer.
  Nothing answered is lost when the service dies; a power loss or kernel crash can lose
  what the OS had not written out yet (up to ~30 s on Linux defaults).
- ``async``: the behaviour before this setting existed: the answer leaves first, the thread writes
  within ~50 ms. A crash of the service loses the answers of the last ~50 ms (and a power
  loss more); a write error is logged and counted (``mlnb_audit_dropped_total``), not
  answered.

In ``fsync`` and ``write`` modes a record that cannot be written (disk full, folder deleted)
turns the answer into a 503 naming the folder, with the request id; the error is logged once
until writing works again, and the batch that failed is cut from the file, so the records
written before stay whole. The shadow lines are never waited for (they may be lost in a
crash: the prediction line is not).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from blake3 import blake3

from mlnb.exceptions import FeedbackError
from mlnb.serve._appendfile import AppendFile, AuditUnavailable, Waiters, parse_sync
from mlnb.serve._metrics import Metrics

__all__ = ["AuditLog", "AuditUnavailable", "FeedbackError", "inputs_hash", "parse_sync"]

log = logging.getLogger("mlnb.serve.audit")
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
RECENT = 100_000  # answers kept in memory for feedback
LINGER = 0.05  # seconds the async writer waits for more records before writing
MAX_BATCH = 20_000  # records in one write
COMMIT_TIMEOUT = 30.0  # seconds an answer waits for its record before it is a 503


def inputs_hash(inputs: Any) -> str:
    return blake3(orjson.dumps(inputs, option=_OPTIONS, default=str)).hexdigest()


def _line(doc: dict[str, Any]) -> bytes:
    """One JSON line; the inputs are serialised once, for the line and for their hash."""
    if "inputs" not in doc:
        return orjson.dumps(doc, option=_OPTIONS, default=str) + b"\n"
    doc = dict(doc)  # the caller's dict stays as it was (the shadow reads it later)
    inputs = orjson.dumps(doc.pop("inputs"), option=_OPTIONS, default=str)
    doc["inputs_hash"] = blake3(inputs).hexdigest()
    head = orjson.dumps(doc, option=_OPTIONS, default=str)
    return head[:-1] + b',"inputs":' + inputs + b"}\n"


class AuditLog:
    def __init__(
        self,
        folder: Path,
        metrics: Metrics,
        max_bytes: int = 64 * 1024 * 1024,
        sync: str = "fsync",
    ) -> None:
        self.folder = folder
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.sync = parse_sync(sync)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self._part = 0
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        durable = self.sync == "fsync"
        self._predictions = AppendFile(folder, self._next_name, durable, max_bytes)
        self._feedback = AppendFile(folder, lambda: "feedback.jsonl", durable)
        self._failing: str | None = None  # the error being answered with, logged once
        self._stopped = False
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._feedback_lock = threading.Lock()
        self.correct: dict[str, int] = {}
        self.labelled: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="mlnb-audit", daemon=True)
        self._thread.start()

    @property
    def current(self) -> Path | None:
        """The predictions file written now (None before the first record)."""
        return self._predictions.path

    def _next_name(self) -> str:
        if self._predictions.path is not None:  # opened before: a rotation or a lost file
            self._part += 1
        return f"predictions-{self._stamp}-{os.getpid()}-{self._part:04d}.jsonl"

    # -- the request path -------------------------------------------------------------
    def remember(self, request_id: str, endpoint: str, outputs: Any) -> None:
        """Keep an answer in memory for feedback."""
        recent = self.recent
        recent[request_id] = {"endpoint": endpoint, "outputs": outputs}
        if len(recent) > RECENT:
            recent.popitem(last=False)

    def record(self, doc: dict[str, Any], remember: bool = True) -> None:
        """Queue one record without waiting for it (shadow lines; never blocks)."""
        rid = doc.get("request_id")
        if remember and rid and doc.get("kind") == "prediction":
            self.remember(rid, doc.get("endpoint") or "", doc.get("outputs"))
        self._queue.put(("predictions", doc, None))

    async def commit(self, doc: dict[str, Any]) -> None:
        """Queue one prediction record and return once it is recorded as ``MLNB_AUDIT_SYNC``
        says (at once for ``async``); :class:`AuditUnavailable` if it could not be."""
        if self.sync == "async":
            self._queue.put(("predictions", doc, None))
            return
        if self._stopped:
            raise AuditUnavailable(f"the audit log of {self.folder} is closed (shutting down)")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put(("predictions", doc, future))
        try:
            await asyncio.wait_for(future, COMMIT_TIMEOUT)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            raise AuditUnavailable(
                f"the audit log in {self.folder} was not written within {COMMIT_TIMEOUT:g} s "
                "(a hung disk?)"
            ) from None

    def _commit_blocking(self, kind: str, doc: dict[str, Any]) -> None:
        """:meth:`commit` for a thread (feedback runs in the thread pool)."""
        if self.sync == "async":
            self._queue.put((kind, doc, None))
            return
        if self._stopped:
            raise AuditUnavailable(f"the audit log of {self.folder} is closed (shutting down)")
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((kind, doc, future))
        try:
            future.result(COMMIT_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise AuditUnavailable(
                f"the audit log in {self.folder} was not written within {COMMIT_TIMEOUT:g} s "
                "(a hung disk?)"
            ) from None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written."""
        done = threading.Event()
        self._queue.put(("flush", done, None))
        return done.wait(timeout)

    def close(self) -> None:
        self.flush(5.0)
        self._stopped = True
        self._queue.put(("stop", None, None))
        self._thread.join(5.0)

    # -- the writer thread ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if self.sync == "async" and item[0] in ("predictions", "feedback"):
                # let the records of the next moments gather: one wake-up and one write per
                # LINGER seconds under load, instead of one per record
                time.sleep(LINGER)
            # fsync/write: no wait; the records that arrive during one write and sync are
            # the next batch (group commit)
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                stop = self._batch(batch)
            except Exception:  # a bug must not leave requests waiting forever
                log.exception("the audit writer failed on a batch")
                failed = Waiters()
                for _, _, waiter in batch:
                    failed.add(waiter)
                failed.resolve(AuditUnavailable("the audit writer failed; see the service log"))
                stop = any(kind == "stop" for kind, _, _ in batch)
            if stop:
                self._predictions.close()
                self._feedback.close()
                return

    def _batch(self, batch: list[tuple[str, Any, Any]]) -> bool:
        lines: list[bytes] = []
        line_waiters = Waiters()
        feedback: list[bytes] = []
        feedback_waiters = Waiters()
        signals: list[threading.Event] = []
        stop = False
        for kind, doc, waiter in batch:
            if kind == "flush":
                signals.append(doc)
            elif kind == "stop":
                stop = True
            else:
                try:
                    data = (
                        _line(doc)
                        if kind == "predictions"
                        else orjson.dumps(doc, option=_OPTIONS, default=str) + b"\n"
                    )
                except (TypeError, orjson.JSONEncodeError) as exc:
                    self.metrics.audit_dropped.inc()
                    log.error("an audit record could not be serialised: %s", exc)
                    one = Waiters()
                    one.add(waiter)
                    one.resolve(AuditUnavailable(f"the audit record cannot be serialised: {exc}"))
                    continue
                if kind == "predictions":
                    lines.append(data)
                    line_waiters.add(waiter)
                else:
                    feedback.append(data)
                    feedback_waiters.add(waiter)
        if lines and self._write(self._predictions, lines, line_waiters):
            self.metrics.audit_records.inc(len(lines))
        if feedback:
            self._write(self._feedback, feedback, feedback_waiters)
        for signal in signals:
            signal.set()
        return stop

    def _write(self, target: AppendFile, lines: list[bytes], waiters: Waiters) -> bool:
        try:
            target.append(b"".join(lines))
        except OSError as exc:
            self.metrics.audit_dropped.inc(len(lines))
            reason = exc.strerror or str(exc)
            message = (
                f"the audit log cannot be written in {self.folder} ({reason}); "
                "this request was not answered; free space or restore the folder "
                "(MLNB_AUDIT_DIR), then retry"
            )
            if self._failing is None:
                log.error("cannot write the audit log in %s: %s", self.folder, exc)
            self._failing = message
            waiters.resolve(AuditUnavailable(message))
            return False
        if self._failing is not None:
            log.warning("the audit log is written again in %s", self.folder)
            self._failing = None
        waiters.resolve()
        return True

    # -- feedback ---------------------------------------------------------------------
    def _find(self, request_id: str) -> dict[str, Any] | None:
        found = self.recent.get(request_id)
        if found is not None:
            return found
        self.flush()
        needle = f'"request_id":"{request_id}"'.encode()
        for path in sorted(self.folder.glob("predictions-*.jsonl"), reverse=True):
            with path.open("rb") as lines:
                for line in lines:
                    if needle in line:
                        doc = orjson.loads(line)
                        if doc.get("kind") == "prediction":
                            return {"endpoint": doc.get("endpoint"), "outputs": doc.get("outputs")}
        return None

    def feedback(self, request_id: str, label: Any) -> dict[str, Any]:
        """Record a label for an earlier answer; returns the live accuracy (thread-safe;
        blocks until the label is recorded, :class:`AuditUnavailable` if it cannot be)."""
        found = self._find(request_id)
        if found is None:
            raise FeedbackError(
                404,
                f"no prediction with request_id {request_id!r} in the audit log of this "
                "service; send the X-Request-ID (or request_id field) of an answer it gave.",
            )
        outputs = found["outputs"]
        predictions = outputs.get("predictions") if isinstance(outputs, dict) else outputs
        if not isinstance(predictions, list):
            predictions = [predictions]
        labels = label if isinstance(label, list) else [label]
        if len(labels) != len(predictions):
            raise FeedbackError(
                409,  # a valid body that does not fit the recorded answer
                f"request {request_id} answered {len(predictions)} prediction(s) but "
                f"{len(labels)} label(s) were sent; send one label per prediction (a list).",
            )
        endpoint = str(found["endpoint"])
        hits = sum(1 for p, y in zip(predictions, labels, strict=True) if p == y)
        # recorded first (durably, as MLNB_AUDIT_SYNC says), counted after: a label that
        # could not be recorded is not in the live accuracy either
        self._commit_blocking(
            "feedback",
            {
                "kind": "feedback",
                "request_id": request_id,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "endpoint": endpoint,
                "label": label,
                "predictions": predictions,
                "correct": hits,
            },
        )
        with self._feedback_lock:
            self.correct[endpoint] = self.correct.get(endpoint, 0) + hits
            self.labelled[endpoint] = self.labelled.get(endpoint, 0) + len(labels)
            accuracy = self.correct[endpoint] / self.labelled[endpoint]
        self.metrics.feedback.labels(endpoint).inc(len(labels))
        self.metrics.live_accuracy.labels(endpoint).set(accuracy)
        return {"request_id": request_id, "correct": hits, "n": len(labels), **self.accuracy()}

    def accuracy(self) -> dict[str, Any]:
        with self._feedback_lock:
            return {
                "endpoints": {
                    e: {
                        "labelled": n,
                        "correct": self.correct.get(e, 0),
                        "accuracy": self.correct.get(e, 0) / n,
                    }
                    for e, n in self.labelled.items()
                    if n
                }
            }

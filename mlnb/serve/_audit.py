"""The audit log of a service: every prediction, appended as one JSON line, by a background
thread, to ``<service>/audit/predictions-<start>-<pid>-<part>.jsonl`` (``MLNB_AUDIT_DIR`` elsewhere,
``MLNB_AUDIT=off`` disables it). Files rotate by size (``MLNB_AUDIT_MAX_BYTES``, 64 MiB);
the folder can be versioned as a data set for retraining (``mlnb version DIR/audit``).

The request path only puts a reference on a queue: the thread serialises (orjson), hashes
the inputs (BLAKE3) and writes in batches. ``POST /feedback`` labels are appended to
``feedback.jsonl`` and compared with the answers: live accuracy.
"""

from __future__ import annotations

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

from mlnb.serve._metrics import Metrics

__all__ = ["AuditLog", "FeedbackError", "inputs_hash"]

log = logging.getLogger("mlnb.serve.audit")
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
RECENT = 100_000  # answers kept in memory for feedback
LINGER = 0.05  # seconds the writer waits for more records before writing


def inputs_hash(inputs: Any) -> str:
    return blake3(orjson.dumps(inputs, option=_OPTIONS, default=str)).hexdigest()


def _line(doc: dict[str, Any]) -> bytes:
    """One JSON line; the inputs are serialised once, for the line and for their hash."""
    if "inputs" not in doc:
        return orjson.dumps(doc, option=_OPTIONS, default=str) + b"\n"
    inputs = orjson.dumps(doc.pop("inputs"), option=_OPTIONS, default=str)
    doc["inputs_hash"] = blake3(inputs).hexdigest()
    head = orjson.dumps(doc, option=_OPTIONS, default=str)
    return head[:-1] + b',"inputs":' + inputs + b"}\n"


class FeedbackError(Exception):
    """A feedback label that cannot be used (unknown request id, wrong shape)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AuditLog:
    def __init__(self, folder: Path, metrics: Metrics, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.folder = folder
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._file: Any = None
        self._written = 0
        self._part = 0
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.current: Path | None = None
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._feedback_lock = threading.Lock()
        self.correct: dict[str, int] = {}
        self.labelled: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="mlnb-audit", daemon=True)
        self._thread.start()

    # -- the request path -------------------------------------------------------------
    def remember(self, request_id: str, endpoint: str, outputs: Any) -> None:
        """Keep an answer in memory for feedback (the record may be written later)."""
        recent = self.recent
        recent[request_id] = {"endpoint": endpoint, "outputs": outputs}
        if len(recent) > RECENT:
            recent.popitem(last=False)

    def record(self, doc: dict[str, Any], remember: bool = True) -> None:
        """Queue one prediction record (never blocks)."""
        rid = doc.get("request_id")
        if remember and rid and doc.get("kind") == "prediction":
            self.remember(rid, doc.get("endpoint") or "", doc.get("outputs"))
        self._queue.put(("predictions", doc))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is on disk."""
        done = threading.Event()
        self._queue.put(("flush", done))
        return done.wait(timeout)

    def close(self) -> None:
        self.flush(5.0)
        self._queue.put(("stop", None))
        self._thread.join(5.0)

    # -- the writer thread ------------------------------------------------------------
    def _open(self) -> Any:
        name = f"predictions-{self._stamp}-{os.getpid()}-{self._part:04d}"
        self.current = self.folder / f"{name}.jsonl"
        self._written = self.current.stat().st_size if self.current.exists() else 0
        return self.current.open("ab")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item[0] == "predictions":
                # let the records of the next moments gather: one wake-up and one write per
                # LINGER seconds under load, instead of one per record
                time.sleep(LINGER)
            batch = [item]
            while len(batch) < 20_000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines: list[bytes] = []
            feedback: list[bytes] = []
            signals: list[threading.Event] = []
            stop = False
            for kind, doc in batch:
                if kind == "flush":
                    signals.append(doc)
                elif kind == "stop":
                    stop = True
                elif kind == "feedback":
                    feedback.append(orjson.dumps(doc, option=_OPTIONS, default=str) + b"\n")
                else:
                    try:
                        lines.append(_line(doc))
                    except (TypeError, orjson.JSONEncodeError) as exc:
                        self.metrics.audit_dropped.inc()
                        log.error("an audit record could not be serialised: %s", exc)
            self._write(lines, feedback)
            for signal in signals:
                signal.set()
            if stop:
                if self._file is not None:
                    self._file.close()
                return

    def _write(self, lines: list[bytes], feedback: list[bytes]) -> None:
        try:
            if lines:
                if self._file is None:
                    self._file = self._open()
                data = b"".join(lines)
                self._file.write(data)
                self._file.flush()
                self._written += len(data)
                self.metrics.audit_records.inc(len(lines))
                if self._written >= self.max_bytes:
                    self._file.close()
                    self._part += 1
                    self._file = self._open()
            if feedback:
                with (self.folder / "feedback.jsonl").open("ab") as out:
                    out.write(b"".join(feedback))
        except OSError as exc:
            self.metrics.audit_dropped.inc(len(lines))
            log.error("cannot write the audit log in %s: %s", self.folder, exc)

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
        """Record a label for an earlier answer; returns the live accuracy (thread-safe)."""
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
        with self._feedback_lock:
            self.correct[endpoint] = self.correct.get(endpoint, 0) + hits
            self.labelled[endpoint] = self.labelled.get(endpoint, 0) + len(labels)
            accuracy = self.correct[endpoint] / self.labelled[endpoint]
        self.metrics.feedback.labels(endpoint).inc(len(labels))
        self.metrics.live_accuracy.labels(endpoint).set(accuracy)
        self._queue.put(
            (
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
        )
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

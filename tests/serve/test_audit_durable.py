"""What an answer promises about its audit record (``MLNB_AUDIT_SYNC``): a real ``mlnb
serve`` process killed with SIGKILL under load by counting clients has an audit line for
every prediction and every feedback it acknowledged; a record that cannot be written (a
full file system, a deleted folder) is a 503, not an answer; bad settings stop the start."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlnb.serve import ServiceError, create_app
from tests.disks import fill, small_tmpfs
from tests.serve.conftest import Safe, app_client
from tests.serving import RunningService, running_service

PREDICTION_THREADS = 6
FEEDBACK_THREADS = 2
ACKNOWLEDGED_BEFORE_KILL = 100  # predictions answered 200 before the SIGKILL
TRIALS = 5


def _audited(folder: Path, pattern: str, kind: str) -> list[str]:
    """The request ids of the ``kind`` lines of the files; every line must be whole JSON."""
    ids = []
    for path in sorted(folder.glob(pattern)):
        for line in path.read_bytes().splitlines():
            doc = json.loads(line)  # a torn line fails here
            if doc.get("kind") == kind:
                ids.append(doc["request_id"])
    return ids


class CountingLoad:
    """Threads posting predictions (and feedback for the predictions answered), each
    counting what was acknowledged (a 200 read in full) by request id, until the server
    goes away."""

    def __init__(self, url: str, body: dict[str, Any], trial: str) -> None:
        self.url = url
        self.body = body
        self.labels = [1] * len(body["records"])  # one label per row answered
        self.trial = trial
        self.predicted: list[str] = []
        self.labelled: list[str] = []
        self.other: list[int] = []  # statuses other than 200 (none expected)
        self._answered: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._predict, args=(n,), daemon=True)
            for n in range(PREDICTION_THREADS)
        ] + [threading.Thread(target=self._feedback, daemon=True) for _ in range(FEEDBACK_THREADS)]

    def __enter__(self) -> CountingLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _predict(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                rid = f"{self.trial}-t{n}-{i}"
                i += 1
                try:
                    answer = client.post("/predict", json=self.body, headers={"X-Request-ID": rid})
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 200:
                    assert answer.json()["request_id"] == rid
                    self.predicted.append(rid)
                    self._answered.put(rid)
                else:
                    self.other.append(answer.status_code)

    def _feedback(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    rid = self._answered.get(timeout=0.5)
                except queue.Empty:
                    continue
                try:
                    answer = client.post(
                        "/feedback", json={"request_id": rid, "label": self.labels}
                    )
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    self.labelled.append(rid)
                else:
                    self.other.append(answer.status_code)


@contextlib.contextmanager
def _services(
    safe: Safe, tmp_path: Path, envs: list[dict[str, str]]
) -> Iterator[list[RunningService]]:
    """A service per ``envs`` item (audit in ``audit-I``), all started at the same time (a
    start is mostly imports): the trials then run one after the other."""
    starting = [
        running_service(
            safe.folder,
            tmp_path / f"serve-{i}.log",
            MLNB_AUDIT_DIR=str(tmp_path / f"audit-{i}"),
            **env,
        )
        for i, env in enumerate(envs)
    ]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(len(envs)) as pool:
        futures = [pool.submit(cm.__enter__) for cm in starting]
        services, errors = [], []
        for cm, future in zip(starting, futures, strict=True):
            try:
                services.append(future.result())
                stack.push(cm)  # stopped on the way out
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        yield services


def _kill_under_load(service: RunningService, body: dict[str, Any], audit: Path) -> dict[str, Any]:
    """Counting clients against ``service``, a SIGKILL once enough was acknowledged, then
    what was acknowledged and is not in the audit files."""
    trial = audit.name
    with CountingLoad(service.url, body, trial) as load:
        deadline = time.monotonic() + 120  # generous: the machine is shared
        while len(load.predicted) < ACKNOWLEDGED_BEFORE_KILL or not load.labelled:
            assert service.process.poll() is None, service.log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                f"only {len(load.predicted)} predictions and {len(load.labelled)} labels "
                f"acknowledged in 120 s:\n{service.log.read_text()[-3000:]}"
            )
            time.sleep(0.05)
        os.killpg(service.process.pid, signal.SIGKILL)  # mid-load, no shutdown
        service.process.wait(30)
    assert service.process.returncode == -signal.SIGKILL
    assert load.other == []
    predicted = set(_audited(audit, "predictions-*.jsonl", "prediction"))
    labelled = set(_audited(audit, "feedback.jsonl", "feedback"))
    return {
        "acknowledged": len(load.predicted),
        "unaudited": sorted(set(load.predicted) - predicted),
        "labels": len(load.labelled),
        "unrecorded_labels": sorted(set(load.labelled) - labelled),
    }


def test_kill_9_under_load_loses_no_acknowledged_prediction_or_label(
    safe: Safe, tmp_path: Path
) -> None:
    # TRIALS with the default (fsync), then one with MLNB_AUDIT_SYNC=write (which promises
    # the same for a crash of the service)
    envs: list[dict[str, str]] = [{}] * TRIALS + [{"MLNB_AUDIT_SYNC": "write"}]
    with _services(safe, tmp_path, envs) as services:
        trials = [
            _kill_under_load(service, safe.body(2), tmp_path / f"audit-{i}")
            for i, service in enumerate(services)
        ]
    for trial in trials:
        assert trial["acknowledged"] >= ACKNOWLEDGED_BEFORE_KILL and trial["labels"] > 0
    lost = [(t["unaudited"], t["unrecorded_labels"]) for t in trials]
    assert lost == [([], [])] * len(envs), trials


# -- settings ------------------------------------------------------------------------------
def test_audit_sync_settings_are_parsed(safe: Safe, tmp_path: Path) -> None:
    settings = (("", "fsync"), ("FSYNC", "fsync"), (" write ", "write"), ("async", "async"))
    for raw, expected in settings:
        with app_client(safe.folder, MLNB_AUDIT_DIR=str(tmp_path / "a"), MLNB_AUDIT_SYNC=raw) as c:
            runtime = c.app.state.runtime
            assert runtime.audit.sync == expected
            assert c.post("/predict", json=safe.body(1)).status_code == 200
            runtime.audit.flush()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLNB_AUDIT_DIR", str(tmp_path / "bad"))
        mp.setenv("MLNB_AUDIT_SYNC", "sometimes")
        with pytest.raises(
            ServiceError,
            match=r"MLNB_AUDIT_SYNC='sometimes' is not a known setting; use one of fsync, "
            r"write, async",
        ):
            create_app(safe.folder)
    assert not (tmp_path / "bad").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLNB_AUDIT_SYNC", "fsnyc", "MLNB_AUDIT_SYNC='fsnyc' is not a known setting; use one of"),
        ("MLNB_AUDIT_MAX_BYTES", "64MB", "MLNB_AUDIT_MAX_BYTES='64MB' is not a whole number"),
        ("MLNB_MAX_BODY_BYTES", "0", "MLNB_MAX_BODY_BYTES='0' is not a whole number of at least 1"),
        ("MLNB_MAX_BATCH_ROWS", "lots", "MLNB_MAX_BATCH_ROWS='lots' is not a whole number"),
    ],
)
def test_a_bad_setting_stops_mlnb_serve_with_one_clear_line(
    safe: Safe, name: str, value: str, message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlnb", "serve", str(safe.folder), "--port", "9"],
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == ServiceError.exit_code, done.stderr[-2000:]
    assert message in done.stderr
    assert "Traceback" not in done.stderr


# -- records that cannot be written ------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system, full disks as they happen."""
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


def _audit_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "mlnb.serve.audit" and r.levelno >= logging.ERROR
    ]


def test_a_full_disk_is_a_503_and_keeps_what_was_recorded(
    safe: Safe, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = small_disk / "audit"
    env = {"MLNB_AUDIT_DIR": str(audit), "MLNB_ROUTING": "off"}
    with app_client(safe.folder, **env) as client:
        before = [client.post("/predict", json=safe.body(3)) for _ in range(3)]
        filler = fill(small_disk)
        # the last page of the audit file may still hold part of a line: a short write
        full = [client.post("/predict", json=safe.body(30)) for _ in range(3)]
        label = client.post(
            "/feedback", json={"request_id": before[0].json()["request_id"], "label": [1, 1, 1]}
        )
        summary = client.get("/monitor/feedback").json()
        filler.unlink()
        after = client.post("/predict", json=safe.body(3))
        client.app.state.runtime.audit.flush()
    assert [a.status_code for a in before] == [200, 200, 200]
    for answer in full:
        assert answer.status_code == 503
        doc = answer.json()
        assert doc["request_id"] == answer.headers["x-request-id"]
        assert f"the audit log cannot be written in {audit}" in doc["detail"]
        assert "No space left on device" in doc["detail"]
    assert label.status_code == 503 and "No space left" in label.json()["detail"]
    assert summary == {"endpoints": {}}  # the label that was not recorded is not counted
    assert after.status_code == 200
    assert len(_audit_errors(caplog)) == 1  # logged once, not once per request
    acknowledged = [a.json()["request_id"] for a in [*before, after]]
    assert _audited(audit, "predictions-*.jsonl", "prediction") == acknowledged


def test_a_deleted_audit_folder_is_a_503_until_it_is_back(
    safe: Safe, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = tmp_path / "audit"
    env = {"MLNB_AUDIT_DIR": str(audit), "MLNB_ROUTING": "off"}
    with app_client(safe.folder, **env) as client:
        first = client.post("/predict", json=safe.body(1))
        shutil.rmtree(audit)
        gone = [client.post("/predict", json=safe.body(1)) for _ in range(2)]
        audit.mkdir()
        back = client.post("/predict", json=safe.body(1))
        client.app.state.runtime.audit.flush()
    assert first.status_code == 200 and back.status_code == 200
    for answer in gone:
        assert answer.status_code == 503
        assert answer.json()["request_id"] == answer.headers["x-request-id"]
        assert f"the audit log cannot be written in {audit}" in answer.json()["detail"]
    assert len(_audit_errors(caplog)) == 1
    assert _audited(audit, "predictions-*.jsonl", "prediction") == [back.json()["request_id"]]

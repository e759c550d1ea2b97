"""The durable outbox against a real ``mlflow server`` (SQLite backend) that is stopped in
the middle of a run and started again on the same port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import mlnb
from mlnb.exceptions import TrackingUnavailableError
from mlnb.tracking import _client
from mlnb.tracking._outbox import Outbox
from mlnb.tracking._session import session
from tests.conftest import reset_tracking, run_mlnb
from tests.servers import MlflowServer, free_port, mlflow_server

pytestmark = pytest.mark.slow

# Set by mlnb (os.environ.setdefault) the first time it talks to a server; removed for each
# test here so mlnb's own defaults apply and nothing leaks into later tests.
_HTTP_ENV = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)
WARNING = "mlnb: warning:"


def loss(step: int) -> float:
    return 10.0 - 0.5 * step  # exact in binary floating point


def _sqlite_server(folder: Path) -> contextlib.AbstractContextManager[MlflowServer]:
    folder.mkdir(parents=True)
    return mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", workers=1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A server of the test's own, which it may stop and start again."""
    with _sqlite_server(tmp_path / "server") as running:
        yield running


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A server for the tests that never stop it."""
    with _sqlite_server(tmp_path_factory.mktemp("shared") / "server") as running:
        yield running


@pytest.fixture(autouse=True)
def _http_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in _HTTP_ENV:
        monkeypatch.setenv(key, "")  # recorded, so the value before the test comes back
        monkeypatch.delenv(key)


def _track_to(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLNB_FLUSH_INTERVAL", "0.2")
    reset_tracking()


def _journal(project: Path) -> list[dict[str, Any]]:
    journal = project / ".mlnb" / "outbox" / "journal.jsonl"
    return [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if WARNING in line]


def _offline_run(project: Path, server: MlflowServer, tmp_path: Path) -> tuple[str, Path]:
    """A run that logs steps 0..9 online, then 10..19, a tag and an artifact with the
    server stopped, and ends offline. Returns the run id and the artifact's text file."""
    active = mlnb.start_run(experiment_name="outbox")
    run_id = active.info.run_id
    for step in range(10):
        mlnb.log_metrics({"loss": loss(step)}, step=step)
    mlnb.log_params({"lr": 0.1})
    mlnb.flush()
    # Git/environment provenance goes out on its own thread; let it finish while the
    # server is up so the offline part below is the same on every run.
    run = session().run
    assert run is not None and run.background is not None
    background = run.background
    background.join(timeout=60)
    assert not background.is_alive()

    server.stop()
    for step in range(10, 20):
        mlnb.log_metrics({"loss": loss(step)}, step=step)
    mlnb.set_tags({"phase": "offline"})
    report = tmp_path / "report.txt"
    report.write_text("written while the server was down\n", encoding="utf-8")
    mlnb.log_artifact(report)
    mlnb.end_run()
    return run_id, report


def _check_journal(entries: list[dict[str, Any]], run_id: str) -> None:
    """What the journal holds after :func:`_offline_run`, before anything is replayed."""
    assert entries, "nothing was journaled while the server was down"
    assert {e["run_id"] for e in entries} == {run_id}
    steps = [m[3] for e in entries if e["op"] == "log_batch" for m in e["metrics"]]
    assert sorted(steps) == list(range(10, 20))
    tags = [t for e in entries if e["op"] == "log_batch" for t in e["tags"]]
    assert ["phase", "offline"] in tags
    assert sorted(e.get("artifact_path") or "" for e in entries if e["op"] == "log_artifact") == [
        "",
        "mlnb",
    ]
    assert entries[-1]["op"] == "set_terminated"
    assert entries[-1]["status"] == "FINISHED"
    assert [e["op"] for e in entries].count("set_terminated") == 1


def _check_run_on_server(client: MlflowClient, run_id: str, tmp_path: Path) -> None:
    history = client.get_metric_history(run_id, "loss")
    assert len(history) == 20
    assert sorted(m.step for m in history) == list(range(20))
    assert {m.step: m.value for m in history} == {step: loss(step) for step in range(20)}
    run = client.get_run(run_id)
    assert run.data.params == {"lr": "0.1"}
    assert run.data.tags["phase"] == "offline"
    assert run.data.metrics["loss"] == loss(19)
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    top = {f.path: f.is_dir for f in client.list_artifacts(run_id)}
    assert top == {"mlnb": True, "report.txt": False}
    name = "report.txt"
    provenance = {f.path for f in client.list_artifacts(run_id, "mlnb")}
    assert {"mlnb/provenance.json", "mlnb/environment.txt"} <= provenance
    local = Path(client.download_artifacts(run_id, name, str(tmp_path / "download")))
    assert local.read_text(encoding="utf-8") == "written while the server was down\n"


def test_outbox_survives_a_stopped_server(
    project: Path,
    server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _track_to(server.url, monkeypatch)
    capfd.readouterr()

    run_id, report = _offline_run(project, server, tmp_path)

    err = capfd.readouterr().err
    warnings = _warnings(err)
    assert len(warnings) == 1, err
    assert f"cannot reach the tracking server at {server.url}" in warnings[0]
    assert "mlnb sync" in warnings[0]
    entries = _journal(project)
    _check_journal(entries, run_id)
    pending = len(Outbox(project / ".mlnb" / "outbox"))
    assert pending == len(entries)
    report.unlink()  # the journal keeps its own copy

    server.start()
    done = run_mlnb(project, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"sent {pending} journaled write(s); 0 left"
    assert not (project / ".mlnb" / "outbox" / "journal.jsonl").exists()
    client = MlflowClient(server.url)
    _check_run_on_server(client, run_id, tmp_path)

    again = run_mlnb(project, "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip().splitlines() == ["sent 0 journaled write(s); 0 left"]
    assert len(client.get_metric_history(run_id, "loss")) == 20
    assert _warnings(capfd.readouterr().err) == []


def test_next_successful_write_replays_the_journal(
    project: Path,
    server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _track_to(server.url, monkeypatch)
    sent: list[dict[str, Any]] = []
    send_entry = _client.send_entry

    def recording_send(entry: dict[str, Any]) -> None:
        send_entry(entry)
        sent.append(entry)

    monkeypatch.setattr(_client, "send_entry", recording_send)
    capfd.readouterr()

    run_id, _ = _offline_run(project, server, tmp_path)
    entries = _journal(project)
    _check_journal(entries, run_id)
    assert len(_warnings(capfd.readouterr().err)) == 1

    server.start()
    sent.clear()
    active = mlnb.start_run(experiment_name="outbox", run_name="after")
    mlnb.log_metrics({"acc": 0.75}, step=0)
    mlnb.flush()
    mlnb.end_run()

    # The journal went first, in its order and once; then the new run's own writes.
    replayed = [e["id"] for e in sent if "id" in e]
    assert replayed == [e["id"] for e in entries]
    assert [e.get("id") for e in sent[: len(entries)]] == replayed
    assert {e["run_id"] for e in sent[len(entries) :]} == {active.info.run_id}
    assert not (project / ".mlnb" / "outbox" / "journal.jsonl").exists()

    err = capfd.readouterr().err
    warnings = _warnings(err)
    assert warnings == [
        f"{WARNING} tracking server at {server.url} is back; "
        f"{len(entries)} journaled write(s) sent."
    ], err
    client = MlflowClient(server.url)
    _check_run_on_server(client, run_id, tmp_path)
    after = client.get_run(active.info.run_id)
    assert after.data.metrics == {"acc": 0.75}
    assert after.info.status == "FINISHED"


def _metric_entries(url: str, run_id: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "op": "log_batch",
            "uri": url,
            "run_id": run_id,
            "metrics": [["m", step * 1.5, 1_700_000_000_000 + step, step]],
            "params": [],
            "tags": [],
        }
        for step in range(count)
    ]


def _history(client: MlflowClient, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "m"))


def test_interrupted_replay_sends_each_entry_once(
    shared_server: MlflowServer, tmp_path: Path
) -> None:
    client = MlflowClient(shared_server.url)
    run_id = client.create_run(client.create_experiment("replay")).info.run_id
    outbox = Outbox(tmp_path / "outbox")
    ids = [outbox.append(entry) for entry in _metric_entries(shared_server.url, run_id, 5)]
    assert len(outbox) == 5

    calls: list[str] = []

    def interrupted(entry: dict[str, Any]) -> None:
        if len(calls) == 2:
            raise ConnectionError("the replaying process was interrupted")
        _client.send_entry(entry)
        calls.append(entry["id"])

    first = outbox.replay(interrupted)
    assert (first.sent, first.skipped, first.remaining) == (2, 0, 3)
    assert isinstance(first.error, ConnectionError)
    assert calls == ids[:2]
    assert _history(client, run_id) == [(0, 0.0), (1, 1.5)]
    assert len(outbox) == 3

    def recording(entry: dict[str, Any]) -> None:
        _client.send_entry(entry)
        calls.append(entry["id"])

    second = outbox.replay(recording)
    assert (second.sent, second.skipped, second.remaining, second.error) == (3, 2, 0, None)
    assert calls == ids  # each entry sent exactly once over both replays
    assert _history(client, run_id) == [(step, step * 1.5) for step in range(5)]
    assert not outbox.journal.exists()
    assert not outbox.done.exists()
    assert len(outbox) == 0

    third = outbox.replay(recording)
    assert (third.sent, third.skipped, third.remaining, third.error) == (0, 0, 0, None)
    assert len(client.get_metric_history(run_id, "m")) == 5


def test_replay_after_a_lost_acknowledgement_duplicates_nothing(
    shared_server: MlflowServer, tmp_path: Path
) -> None:
    """The server took an entry but the replay died before recording it as done: the
    entry is sent again, and the server's history still holds each metric once."""
    client = MlflowClient(shared_server.url)
    run_id = client.create_run(client.create_experiment("lost-ack")).info.run_id
    outbox = Outbox(tmp_path / "outbox")
    for entry in _metric_entries(shared_server.url, run_id, 3):
        outbox.append(entry)

    def sent_then_died(entry: dict[str, Any]) -> None:
        _client.send_entry(entry)
        raise ConnectionError("connection lost before the answer arrived")

    first = outbox.replay(sent_then_died)
    assert (first.sent, first.remaining) == (0, 3)
    second = outbox.replay(_client.send_entry)
    assert (second.sent, second.remaining, second.error) == (3, 0, None)
    assert _history(client, run_id) == [(0, 0.0), (1, 1.5), (2, 3.0)]
    assert not outbox.journal.exists()


def test_journaled_file_artifact_keeps_its_name(
    shared_server: MlflowServer, tmp_path: Path
) -> None:
    client = MlflowClient(shared_server.url)
    run_id = client.create_run(client.create_experiment("names")).info.run_id
    report = tmp_path / "report.txt"
    report.write_text("kept\n", encoding="utf-8")
    outbox = Outbox(tmp_path / "outbox")
    entry = {
        "op": "log_artifact",
        "uri": shared_server.url,
        "run_id": run_id,
        "artifact_path": None,
    }
    outbox.append(entry, files={"src": report})
    outbox.append({**entry, "artifact_path": "reports"}, files={"src": report})
    result = outbox.replay(_client.send_entry)
    assert (result.sent, result.error) == (2, None)
    assert [f.path for f in client.list_artifacts(run_id)] == ["report.txt", "reports"]
    assert [f.path for f in client.list_artifacts(run_id, "reports")] == ["reports/report.txt"]


def test_wrong_tracking_uri_is_one_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    _track_to(url, monkeypatch)
    with pytest.raises(TrackingUnavailableError) as caught:
        mlnb.start_run()
    message = str(caught.value)
    assert message.startswith(f"cannot reach the tracking server at {url} ")
    assert "start the server" in message
    assert "unset MLFLOW_TRACKING_URI" in message
    assert "\n" not in message
    assert session().run is None
    assert mlnb.active_run() is None
    assert not (project / ".mlnb" / "outbox" / "journal.jsonl").exists()
    assert _warnings(capfd.readouterr().err) == []

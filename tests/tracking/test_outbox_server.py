"""The tracking journal against a real ``mlflow server`` (SQLite backend) that is stopped in
the middle of a run, or down when the run starts, and started again on the same port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import mlnb
from mlnb.tracking import pending_entries, session
from tests.conftest import reset_tracking, run_mlnb
from tests.servers import MlflowServer, free_port, mlflow_server

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
    """Entries of the journal segments not yet sent (this process's and dead ones')."""
    folder = project / ".mlnb" / "journal"
    out: list[dict[str, Any]] = []
    for segment in sorted(folder.glob("*.jsonl")):
        sent = folder / f"{segment.stem}.sent"
        done = {line.split()[0] for line in sent.read_text().splitlines() if line.strip()}
        for line in segment.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["id"] not in done:
                out.append(entry)
    return out


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if WARNING in line]


def _offline_run(project: Path, server: MlflowServer, tmp_path: Path) -> tuple[str, Path]:
    """A run that logs steps 0..9 online, then 10..19, a tag and an artifact with the
    server stopped, and ends offline. Returns the run id and the artifact's text file."""
    active = mlnb.start_run(experiment_name="outbox")
    run_id = active.info.run_id
    _KEYS.append(session().run.key)  # type: ignore[union-attr]
    for step in range(10):
        mlnb.log_metrics({"loss": loss(step)}, step=step)
    mlnb.log_params({"lr": 0.1})
    assert mlnb.flush() is None
    run = session().run
    assert run is not None and run.background is not None
    run.background.join(timeout=60)
    assert session().flush()  # provenance sent too: the offline part is the same every time

    server.stop()
    for step in range(10, 20):
        mlnb.log_metrics({"loss": loss(step)}, step=step)
    mlnb.set_tags({"phase": "offline"})
    report = tmp_path / "report.txt"
    report.write_text("written while the server was down\n", encoding="utf-8")
    mlnb.log_artifact(report)
    mlnb.end_run()
    return run_id, report


_KEYS: list[str] = []  # the journal key of the run _offline_run made


def _check_journal(entries: list[dict[str, Any]], run_id: str) -> None:
    """What the journal holds after :func:`_offline_run`, before anything is replayed."""
    assert entries, "nothing was journaled while the server was down"
    assert {e["run"] for e in entries} == {_KEYS[-1]}
    steps = [m[3] for e in entries if e["op"] == "log_batch" for m in e["metrics"]]
    assert sorted(steps) == list(range(10, 20))
    tags = [t for e in entries if e["op"] == "log_batch" for t in e["tags"]]
    assert ["phase", "offline"] in tags
    assert {e.get("artifact_path") or "" for e in entries if e["op"] == "log_artifact"} == {
        "",
        "mlnb",
    }
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
    provenance = {f.path for f in client.list_artifacts(run_id, "mlnb")}
    assert {"mlnb/provenance.json", "mlnb/environment.txt"} <= provenance
    local = Path(client.download_artifacts(run_id, "report.txt", str(tmp_path / "download")))
    assert local.read_text(encoding="utf-8") == "written while the server was down\n"


def test_the_journal_survives_a_stopped_server_and_sync_sends_it_once(
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
    assert "cannot reach the tracking store" in warnings[0]
    assert "mlnb sync" in warnings[0]
    entries = _journal(project)
    _check_journal(entries, run_id)
    assert pending_entries(project / ".mlnb" / "journal") == len(entries)
    report.unlink()  # the journal keeps its own copy
    reset_tracking()  # this process is done with the run; its segment stays journaled

    server.start()
    done = run_mlnb(project, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("; 0 left")
    client = MlflowClient(server.url)
    _check_run_on_server(client, run_id, tmp_path)

    again = run_mlnb(project, "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip().splitlines() == ["sent 0 journaled write(s); 0 left"]
    assert len(client.get_metric_history(run_id, "loss")) == 20


def test_the_journal_catches_up_by_itself_when_the_server_is_back(
    project: Path,
    server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _track_to(server.url, monkeypatch)
    capfd.readouterr()
    run_id, _ = _offline_run(project, server, tmp_path)
    _check_journal(_journal(project), run_id)
    assert len(_warnings(capfd.readouterr().err)) == 1

    server.start()
    active = mlnb.start_run(experiment_name="outbox", run_name="after")
    mlnb.log_metrics({"acc": 0.75}, step=0)
    mlnb.end_run()
    assert session().flush()
    assert _journal(project) == []
    err = capfd.readouterr().err
    assert any("is back" in w for w in _warnings(err)), err
    client = MlflowClient(server.url)
    _check_run_on_server(client, run_id, tmp_path)
    after = client.get_run(active.info.run_id)
    assert after.data.metrics == {"acc": 0.75}
    assert after.info.status == "FINISHED"


def test_a_run_started_with_the_server_down_is_created_by_sync(
    project: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Offline start: one warning, the run lives in the journal under a local id, and
    `mlnb sync` creates it and replays everything under its real id."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there yet
    _track_to(url, monkeypatch)
    monkeypatch.setenv("MLNB_HTTP_RETRIES", "0")
    active = mlnb.start_run(experiment_name="offline")
    assert active.info.run_id.startswith("local-")
    for step in range(5):
        mlnb.log_metrics({"loss": loss(step)}, step=step)
    mlnb.end_run()
    warnings = _warnings(capfd.readouterr().err)
    assert len(warnings) == 1 and "cannot reach the tracking store" in warnings[0]
    reset_tracking()
    folder = project / "server"
    folder.mkdir()
    with mlflow_server(
        f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", port=port, workers=1
    ):
        done = run_mlnb(project, "sync")
        assert done.returncode == 0, done.stdout + done.stderr
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("offline")
        assert experiment is not None
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.data.tags["mlnb.local_id"] == active.info.run_id
        assert run.info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == [
            0,
            1,
            2,
            3,
            4,
        ]

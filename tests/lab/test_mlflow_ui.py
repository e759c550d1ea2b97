"""The MLflow UI the sidebar starts (mlnb.labserver._mlflow_ui), without a Jupyter server:
real ``mlnb ui`` processes, another store's UI on the default port (a real HTTP server of
the test's own that answers /health and knows no run), a UI that exits at start and one
that hangs (SIGSTOP). No call waits for MLflow's start-up; the caller asks again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlnb.labserver import _mlflow_ui
from mlnb.labserver._errors import LabError
from mlnb.labserver._mlflow_ui import START_TIMEOUT, MlflowUi, UiState
from tests.servers import free_port

HOST = "127.0.0.1"
pytestmark = pytest.mark.usefixtures("processes")  # real `mlnb ui` processes: the slow lane

# Another project's UI: answers /health, knows none of this store's runs.
_OTHER_UI = textwrap.dedent(
    """
    import http.server, sys

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@pytest.fixture
def other_ui(tmp_path: Path) -> Iterator[int]:
    """The port of another store's UI, answering."""
    port = free_port(HOST)
    script = tmp_path / "other_ui.py"
    script.write_text(_OTHER_UI)
    proc = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        deadline = time.monotonic() + 60
        while not _mlflow_ui._answers(f"http://{HOST}:{port}", None):
            assert proc.poll() is None and time.monotonic() < deadline, "the other UI did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.kill()
        proc.wait()


def _until_ready(ui: MlflowUi, project: Path, run_id: str | None) -> UiState:
    """Ask as the sidebar does, until the UI answers; the product's deadline decides."""
    seen = []
    deadline = time.monotonic() + START_TIMEOUT + 60
    while time.monotonic() < deadline:
        state = ui.ensure(project, run_id)
        seen.append(state)
        if state.ready:
            return state
        time.sleep(0.3)
    raise AssertionError(f"never ready: {seen[-3:]}\n{_log(project)}")


def _log(project: Path) -> str:
    log = project / ".mlnb" / "mlflow-ui.log"
    return log.read_text()[-3000:] if log.exists() else "(no log)"


def _a_run(project: Path) -> str:
    client = MlflowClient(f"sqlite:///{project / '.mlnb' / 'mlflow.db'}")
    run = client.create_run("0", run_name="known")
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def test_another_stores_ui_on_the_default_port_is_not_linked(
    project: Path, other_ui: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default port answers, but for another store; and it was taken between the check
    and the start (the race of two servers): this store's UI starts on a free port."""
    monkeypatch.setattr(_mlflow_ui, "DEFAULT_PORT", other_ui)
    real_port_is_free = _mlflow_ui.port_is_free
    checks = []

    def port_free_then_taken(port: int, host: str = HOST) -> bool:  # the first check: free
        checks.append(port)
        return True if len(checks) == 1 else real_port_is_free(port, host)

    monkeypatch.setattr(_mlflow_ui, "port_is_free", port_free_then_taken)
    run_id = _a_run(project)
    ui = MlflowUi()
    assert not ui.has_own(project)
    try:
        first = ui.ensure(project, run_id)
        assert first == UiState(f"http://{HOST}:{other_ui}", started=True, ready=False)
        assert ui.has_own(project)  # the sidebar's next asks need no run of the store
        state = _until_ready(ui, project, run_id)
        assert state.url != first.url and state.url.startswith(f"http://{HOST}:")
        assert _mlflow_ui._answers(state.url, run_id), _log(project)  # this store's UI
        assert ui.running_url(project) == state.url
        assert ui.ensure(project, run_id) == UiState(state.url, started=False, ready=True)
        assert _mlflow_ui._answers(first.url, None)  # the other UI was left alone
    finally:
        ui.stop()
    assert ui.running_url(project) is None and not ui.has_own(project)
    deadline = time.monotonic() + 30
    while _mlflow_ui._answers(state.url, None) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _mlflow_ui._answers(state.url, None)  # stopped with the server


def test_a_ui_of_this_store_on_the_default_port_is_reused(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlnb ui` started by the user on the default port serves this store: no second UI."""
    run_id = _a_run(project)
    port = free_port(HOST)
    monkeypatch.setattr(_mlflow_ui, "DEFAULT_PORT", port)
    mine = MlflowUi()
    try:
        users = _until_ready(mine, project, run_id)  # stands in for the user's `mlnb ui`
        assert users.url == f"http://{HOST}:{port}"
        other_server = MlflowUi()
        assert other_server.ensure(project, run_id) == UiState(users.url, started=False, ready=True)
        assert other_server.running_url(project) is None  # not its own: nothing to stop
    finally:
        mine.stop()


def test_a_ui_that_exits_at_start_names_the_problem(project: Path) -> None:
    (project / ".mlnb" / "mlflow.db").write_text("not a database " * 20)
    ui = MlflowUi()
    first = ui.ensure(project, None)
    assert first.started and not first.ready
    deadline = time.monotonic() + START_TIMEOUT
    with pytest.raises(LabError) as raised:
        while time.monotonic() < deadline:
            ui.ensure(project, None)
            time.sleep(0.2)
    assert raised.value.status == 503
    assert "the MLflow UI exited (status" in raised.value.error
    assert "mlnb doctor --repair" in raised.value.error  # the log's own line, the fix in it
    assert "mlflow-ui.log" in raised.value.hint
    assert ui.running_url(project) is None


def test_a_ui_that_hangs_is_stopped_at_the_deadline(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui = MlflowUi()
    first = ui.ensure(project, None)
    proc = ui._starts[project].proc
    os.killpg(proc.pid, signal.SIGSTOP)  # hung before it answers
    monkeypatch.setattr(_mlflow_ui, "START_TIMEOUT", 1.0)
    time.sleep(1.2)
    with pytest.raises(LabError) as raised:
        ui.ensure(project, None)
    assert raised.value.status == 503
    assert raised.value.error == f"the MLflow UI did not answer on {first.url} within 1 s"
    assert proc.poll() is not None  # stopped, not left behind
    assert ui.running_url(project) is None


def test_a_free_port_taken_by_another_process_is_an_error_not_a_loop(
    project: Path, other_ui: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The free port picked for the UI is taken by another process before the UI binds it:
    one 503 naming it, no endless restarts."""
    import socket

    import mlnb._net

    held = socket.socket()
    held.bind((HOST, 0))  # the default port: taken (bound), answering nothing
    monkeypatch.setattr(_mlflow_ui, "DEFAULT_PORT", held.getsockname()[1])
    monkeypatch.setattr(mlnb._net, "free_port", lambda host: other_ui)
    ui = MlflowUi()
    try:
        first = ui.ensure(project, None)
        assert first == UiState(f"http://{HOST}:{other_ui}", started=True, ready=False)
        deadline = time.monotonic() + START_TIMEOUT
        with pytest.raises(LabError) as raised:
            while time.monotonic() < deadline:
                ui.ensure(project, None)
                time.sleep(0.2)
    finally:
        held.close()
    assert raised.value.status == 503
    said = raised.value.error
    assert f"another process answers on {first.url}" in said or "exited (status" in said, said
    assert ui.running_url(project) is None and not ui._starts

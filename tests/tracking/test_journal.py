"""The write-ahead journal under real faults: quiet papermill runs in fresh projects, kill -9
of the kernel and of papermill while it logs, a hung (SIGSTOP) and a dead tracking server,
idle interactive runs. Each test counts lost and duplicated records and asserts 0 (or, for an
un-flushed kill, nothing missing before the last ``flush()`` that returned)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from tests.conftest import run_mlnb, settle_journal
from tests.servers import MlflowServer, mlflow_server

PAPERMILL = str(Path(sys.executable).with_name("papermill"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _notebook(path: Path, *cells: tuple[str, list[str]]) -> Path:
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": tags}) for src, tags in cells],
        metadata={"kernelspec": KERNELSPEC},
    )
    nbformat.write(nb, path)
    return path


def _papermill(
    project: Path, notebook: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PAPERMILL, str(notebook), str(project / "out.ipynb"), "--log-level", "WARNING", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _runs(uri: str) -> list[Any]:
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids)) if ids else []


def _history(uri: str, run_id: str, key: str) -> list[float]:
    return [m.value for m in MlflowClient(uri).get_metric_history(run_id, key)]


def _wait_for(path: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def _uri(project: Path) -> str:
    return f"sqlite:///{project / '.mlnb' / 'mlflow.db'}"


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A project that has never been used: no store, no journal."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.mlnb]\n", encoding="utf-8")
    return project


QUIET = (
    ("%load_ext mlnb", []),
    ("alpha = 0.5\nlabel = 'x'", ["parameters"]),
    ("total = alpha * 2", []),
)


def test_a_quiet_parameterized_notebook_is_recorded_every_time_in_a_fresh_project(
    tmp_path: Path,
) -> None:
    """Plain `papermill -p` on a notebook that logs nothing, 5 times, each in a new project:
    5 of 5 runs recorded with the injected value, and no store left unusable."""
    recorded = 0
    for attempt in range(5):
        project = tmp_path / f"p{attempt}"
        project.mkdir()
        (project / "pyproject.toml").write_text("[tool.mlnb]\n", encoding="utf-8")
        notebook = _notebook(project / "quiet.ipynb", *QUIET)
        proc = _papermill(project, notebook, "-p", "alpha", str(attempt + 1))
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "Creating initial MLflow database tables" not in out + err
        settle_journal(project)
        runs = _runs(_uri(project))  # the store opens: it is not half-migrated
        if len(runs) == 1 and runs[0].data.params.get("alpha") == str(attempt + 1):
            assert runs[0].info.status == "FINISHED"
            assert runs[0].data.tags["mlnb.params.injected"] == "alpha"
            recorded += 1
        assert run_mlnb(project, "show").returncode == 0
    assert recorded == 5


LOGGER = (
    ("%load_ext mlnb", []),
    ("n = 10000", ["parameters"]),
    (
        "import os, time, mlnb\n"
        "open('pid', 'w').write(str(os.getpid()))\n"
        "for i in range(n):\n"
        "    mlnb.log_metric('m', float(i), step=i)\n"
        "    if i % 250 == 249:\n"
        "        mlnb.flush()\n"
        "        open('flushed.tmp', 'w').write(str(i + 1)); os.replace('flushed.tmp', 'flushed')\n"
        "    time.sleep(0.0003)\n",
        [],
    ),
)


def _assert_prefix_without_loss(values: list[float], flushed: int) -> None:
    """Nothing duplicated, nothing missing before what the last flush() covered."""
    assert len(values) == len(set(values)), "duplicated metric rows"
    got = sorted(int(v) for v in values)
    assert got == list(range(len(got))), "a gap: a metric in the middle was lost"
    assert len(got) >= flushed, f"{flushed - len(got)} flushed metric(s) lost"


@pytest.mark.parametrize("victim", ["kernel", "papermill"])
def test_kill_9_while_logging_loses_nothing_flushed_and_the_run_ends_killed(
    fresh: Path, victim: str
) -> None:
    notebook = _notebook(fresh / "logger.ipynb", *LOGGER)
    proc = _papermill(fresh, notebook)
    kernel_pid = int(_wait_for(fresh / "pid"))
    _wait_for(fresh / "flushed")
    deadline = time.monotonic() + 120
    while int((fresh / "flushed").read_text()) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    if victim == "kernel":
        os.kill(kernel_pid, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        with_kernel = kernel_pid
        deadline = time.monotonic() + 30  # the orphaned kernel notices its parent is gone
        while time.monotonic() < deadline:
            try:
                os.kill(with_kernel, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(with_kernel, signal.SIGKILL)
    proc.communicate(timeout=120)
    flushed = int((fresh / "flushed").read_text())
    synced = run_mlnb(fresh, "sync")  # the next mlnb command replays and ends the run
    assert synced.returncode == 0, synced.stderr
    runs = _runs(_uri(fresh))
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "KILLED"
    values = _history(_uri(fresh), run.info.run_id, "m")
    _assert_prefix_without_loss(values, flushed)
    assert run.info.end_time >= run.info.start_time
    assert not list((fresh / ".mlnb" / "journal").glob("*.jsonl"))


SERVER_LOGGER = (
    ("%load_ext mlnb", []),
    ("n = 300", ["parameters"]),
    (
        "import mlnb\n"
        "for i in range(n):\n"
        "    mlnb.log_metric('m', float(i), step=i)\n"
        "mlnb.flush()\n"
        "open('done', 'w').write('1')\n",
        [],
    ),
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    folder = tmp_path / "server"
    folder.mkdir()
    with mlflow_server(
        f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", workers=1
    ) as running:
        yield running


def _server_env(server: MlflowServer) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": server.url, "MLNB_HTTP_TIMEOUT": "3"}


def _timed_papermill(project: Path, env: dict[str, str]) -> tuple[int, str, float]:
    notebook = _notebook(project / "server.ipynb", *SERVER_LOGGER)
    started = time.monotonic()
    proc = _papermill(project, notebook, "-p", "n", "300", env=env)
    _out, err = proc.communicate(timeout=300)
    return proc.returncode, err, time.monotonic() - started


def test_a_hung_tracking_server_loses_nothing_and_the_notebook_finishes(
    fresh: Path, server: MlflowServer
) -> None:
    os.killpg(server._proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        code, err, _elapsed = _timed_papermill(fresh, _server_env(server))
        assert code == 0, err
        assert (fresh / "done").exists()
        assert "not sent yet" in err  # said on papermill's terminal, not lost in silence
        assert list((fresh / ".mlnb" / "journal").glob("*.jsonl"))
    finally:
        os.killpg(server._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    synced = run_mlnb(fresh, "sync", **_server_env(server))
    assert synced.returncode == 0, synced.stderr
    runs = _runs(server.url)
    assert len(runs) == 1
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.params["n"] == "300"
    values = _history(server.url, runs[0].info.run_id, "m")
    _assert_prefix_without_loss(values, 300)
    assert len(values) == 300


def test_a_server_down_at_run_start_gets_everything_after_sync(
    fresh: Path, server: MlflowServer
) -> None:
    server.stop()
    code, err, _elapsed = _timed_papermill(fresh, _server_env(server))
    assert code == 0, err
    assert err.count("cannot reach the tracking store") <= 1
    assert "Traceback" not in err
    server.start()
    synced = run_mlnb(fresh, "sync", **_server_env(server))
    assert synced.returncode == 0, synced.stderr
    runs = _runs(server.url)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlnb.local_id"].startswith("local-")
    values = _history(server.url, run.info.run_id, "m")
    assert sorted(values) == [float(i) for i in range(300)]
    again = run_mlnb(fresh, "sync", **_server_env(server))  # exactly once
    assert again.returncode == 0
    assert len(_history(server.url, run.info.run_id, "m")) == 300
    assert len(_runs(server.url)) == 1


def test_a_replay_cut_between_send_and_mark_sends_nothing_twice(fresh: Path) -> None:
    """The state a kill leaves between a send and its mark in `.sent`: replaying again adds
    no run and no row."""
    script = (
        "import os, mlnb\n"
        "mlnb.start_run(experiment_name='cut')\n"
        "for i in range(50):\n"
        "    mlnb.log_metric('m', float(i), step=i)\n"
        "mlnb.flush()\n"
        "os._exit(0)\n"  # no clean exit: the segment stays, as after a kill
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=fresh, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (sent,) = (fresh / ".mlnb" / "journal").glob("*.sent")
    sent.write_text("")  # every mark lost: all of it was sent, none of it marked
    assert run_mlnb(fresh, "sync").returncode == 0
    runs = _runs(_uri(fresh))
    assert len(runs) == 1
    values = _history(_uri(fresh), runs[0].info.run_id, "m")
    assert sorted(values) == [float(i) for i in range(50)]
    assert runs[0].info.status == "KILLED"


def test_an_idle_interactive_run_ends_at_its_last_cell_and_the_next_cell_starts_a_run(
    fresh: Path,
) -> None:
    from jupyter_client.manager import KernelManager

    path = _notebook(fresh / "idle.ipynb", ("%load_ext mlnb", []))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(
        cwd=str(fresh),
        env={**os.environ, "JPY_SESSION_NAME": str(path), "MLNB_IDLE_TIMEOUT": "3"},
    )
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)

        def run(code: str) -> None:
            reply = kc.execute_interactive(code, timeout=120)
            assert reply["content"]["status"] == "ok", reply["content"]

        run("%load_ext mlnb")
        run("import mlnb; mlnb.log_metric('a', 1.0); mlnb.flush()")
        first_end = time.time() * 1000
        deadline = time.monotonic() + 90
        ended: list[Any] = []
        while time.monotonic() < deadline:
            ended = [r for r in _runs(_uri(fresh)) if r.info.status == "FINISHED"]
            if ended:
                break
            time.sleep(0.25)
        assert len(ended) == 1, "the idle run never ended"
        assert ended[0].info.end_time <= first_end + 1000  # its last cell, not the kernel
        run("mlnb.log_metric('b', 2.0); mlnb.flush()")
        runs = _runs(_uri(fresh))
        assert len(runs) == 2
        second = next(r for r in runs if r.info.run_id != ended[0].info.run_id)
        assert second.info.status == "RUNNING"
        assert "b" in second.data.metrics and "a" not in second.data.metrics
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    settle_journal(fresh)
    runs = _runs(_uri(fresh))
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]


def test_kernel_shutdown_ends_the_run_within_jupyter_clients_grace(fresh: Path) -> None:
    """jupyter_client SIGTERMs a kernel 2.5 s after the shutdown request: mlnb finishes
    before, and the run is FINISHED with every metric."""
    from jupyter_client.manager import KernelManager

    path = _notebook(fresh / "grace.ipynb", ("%load_ext mlnb", []))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(fresh), env={**os.environ, "JPY_SESSION_NAME": str(path)})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    for code in ("%load_ext mlnb", "import mlnb\nfor i in range(2000): mlnb.log_metric('m', i)"):
        assert kc.execute_interactive(code, timeout=120)["content"]["status"] == "ok"
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    settle_journal(fresh)
    runs = _runs(_uri(fresh))
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert len(_history(_uri(fresh), runs[0].info.run_id, "m")) == 2000
    assert not list((fresh / ".mlnb" / "journal").glob("*.jsonl"))

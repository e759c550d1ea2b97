"""Shared fixtures: an isolated project per test, a fresh tracking session, and the
tracking backends (the embedded SQLite store, and an MLflow server on PostgreSQL)."""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
FIXTURE_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def _serialize_ast_parse() -> None:
    """On CPython 3.11 before 3.11.8 and 3.12 before 3.12.2, two threads building an AST
    at once can fail either one with ``SystemError: AST constructor recursion depth
    mismatch`` (gh-106905). A pytest worker runs threads that parse (warm-up imports,
    in-process uvicorn servers formatting tracebacks) next to tests that parse: the test
    process takes mlnb's own guard (``mlnb._ast``) from the start, before any thread."""
    from mlnb._ast import serialize_ast

    serialize_ast()


_serialize_ast_parse()

# Kernels started by papermill come from this interpreter's environment.
os.environ.setdefault("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

_ENV_KEYS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLNB_PROJECT_ROOT",
    "MLNB_NOTEBOOK",
    "MLNB_FLUSH_INTERVAL",
    "MLNB_AUTOLOG_PARAMS",
    "_MLFLOW_SERVER_ARTIFACT_ROOT",
    "MLFLOW_RUN_ID",
    "MLNB_HTTP_RETRIES",
)
# Set by mlnb itself (os.environ.setdefault) when it talks to a tracking server.
_MLNB_SET_KEYS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    "_MLFLOW_SERVER_ARTIFACT_ROOT",
)


def run_mlnb(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The `mlnb` command as a user runs it: a process of its own in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "mlnb", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def reset_tracking() -> None:
    """Forget every piece of process-wide tracking state (session, settings, MLflow's)."""
    from mlnb import config
    from mlnb.tracking import _client, _session, _writer

    current = _session._SESSION
    if current is not None:
        atexit.unregister(current.at_exit)
        current._idle_wake.set()
        for writer in current._writers.values():
            writer.flush(timeout=10)
        _writer._created_hooks.clear()
    for journal in list(_writer._journals.values()):
        if journal.flush(timeout=10):
            journal.close()
        else:  # as this process's exit would: the next mlnb process replays the rest
            journal.detach()
    _writer._journals.clear()
    _writer._recovered.clear()
    _session._SESSION = None
    for key in _MLNB_SET_KEYS:
        os.environ.pop(key, None)
    config.reset_settings()
    _client._configured.clear()
    _client._clients.clear()
    _client._checked.clear()
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        kept = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(None)  # MLflow's own default again (it also unsets the env)
        mlflow.set_registry_uri(None)
        for key, value in kept.items():  # a test's own setting (monkeypatch) stays
            if value is not None:
                os.environ[key] = value


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store with MLflow's schema already migrated (about 1.5 s a time), copied
    into each test's project instead of being migrated again."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_store: Path
) -> Iterator[Path]:
    """An empty project (a folder with ``.mlnb/``) as the working directory, with tracking
    going to its embedded store unless a test points it elsewhere."""
    import shutil
    import sqlite3

    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    root = tmp_path / "project"
    (root / ".mlnb").mkdir(parents=True)
    db = root / ".mlnb" / "mlflow.db"
    shutil.copy(migrated_store, db)
    with sqlite3.connect(db) as conn:  # the Default experiment's artifacts stay in the project
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((root / ".mlnb" / "artifacts" / "0").as_uri(),),
        )
    conn.close()
    monkeypatch.chdir(root)
    reset_tracking()
    yield root
    reset_tracking()


@pytest.fixture(scope="session")
def postgres_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an ``mlflow server`` backed by a PostgreSQL cluster of its own, both on
    127.0.0.1 and stopped at the end of the session."""
    from tests.servers import mlflow_server, postgres_database

    base = tmp_path_factory.mktemp("pg-backend")
    with (
        postgres_database(base / "pg") as db_uri,
        # one uvicorn worker: the tests using it are sequential, and it starts in seconds
        # (four take about 30 s on 2 cores, more on a loaded machine or beside xdist workers)
        mlflow_server(db_uri, base / "artifacts", workers=1) as server,
    ):
        yield server.url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on the embedded SQLite store and once on an MLflow server backed by
    PostgreSQL, selected the way a user would: with ``MLFLOW_TRACKING_URI``."""
    if request.param == "postgres":
        uri = request.getfixturevalue("postgres_tracking_uri")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        reset_tracking()
        return uri
    from mlnb.config import get_settings

    return get_settings().tracking_uri


@pytest.fixture
def shell(project: Path) -> Iterator[Any]:
    """A real IPython shell with ``%load_ext mlnb``, in the ``project``."""
    from IPython.testing import globalipapp

    globalipapp.start_ipython()  # once per process; later calls return None
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "mlnb")
    yield ip
    ip.extension_manager.unload_extension("mlnb")
    for name in list(ip.user_ns):
        if not name.startswith("_") and name not in {"In", "Out", "get_ipython", "exit", "quit"}:
            ip.user_ns.pop(name, None)


def settle_journal(project: Path, timeout: float = 180.0) -> None:
    """Wait until every tracking write journaled in ``project`` has reached the store.

    A kernel that had no time at shutdown (a fresh store, a slow machine) hands what is left
    to a background process; a reader right after papermill returns waits for it here, with
    a deadline generous enough for a slow machine."""
    import time

    journal = project / ".mlnb" / "journal"
    mine = f"-{os.getpid()}-"  # this test process's own segment is live, not left behind

    def unsent() -> list[str]:
        return sorted(p.name for p in journal.glob("*.jsonl") if mine not in p.name)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not journal.is_dir() or not unsent():
            return
        time.sleep(0.1)
    left = unsent()
    log = journal / "handoff.log"
    raise AssertionError(
        f"journal segments still unsent after {timeout:.0f} s: {left}; "
        + (log.read_text(encoding="utf-8")[-2000:] if log.exists() else "no handoff log")
    )


# -- imports left under way by an earlier test -------------------------------------------
@pytest.fixture(autouse=True)
def _no_warm_up_of_an_earlier_test() -> None:
    """Each test starts once mlnb's warm-up threads of earlier tests (``mlnb-warm``,
    ``mlnb-warm-up``: imports of MLflow and its flavors) are done.

    Importing calls ``ast.parse`` (``inspect.signature`` of builtins does), and on CPython
    3.11 before 3.11.8 and 3.12 before 3.12.2 two threads parsing at once can fail either
    one with ``SystemError: AST constructor recursion depth mismatch`` (gh-106905, fixed by
    gh-113035). An import left running by one test then fails a later test that parses:
    the layering and API tests, IPython running a cell in-process."""
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("mlnb-warm") and thread.ident not in _WAITED_FOR:
            _WAITED_FOR.add(thread.ident)  # once: a warm-up stuck on a stopped server is
            thread.join(timeout=60)  # left to its test; an import takes seconds


_WAITED_FOR: set[int | None] = set()


# -- lanes: marks by what a test uses, and the fast lane's guard (tests/lanes.py) ---------
def pytest_configure(config: pytest.Config) -> None:
    from tests import lanes

    if not config.pluginmanager.is_registered(lanes):
        config.pluginmanager.register(lanes, "mlnb-lanes")
    lanes.install_guard()


@pytest.fixture
def processes() -> Iterator[None]:
    """For a test whose library calls start processes of their own (an export's check of its
    service in a fresh process, ``mlnb serve``): the slow lane (tests/lanes.py), and none of
    those processes left running after the test (a journal hand-off, which is meant to
    outlive its process, excepted)."""
    import psutil

    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    yield
    left = []
    for child in me.children(recursive=True):
        try:
            if child.pid not in before and "mlnb.tracking._handoff" not in child.cmdline():
                left.append(child)
        except psutil.Error:  # gone meanwhile
            continue
    for child in left:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    for child in psutil.wait_procs(left, timeout=10)[1]:
        with contextlib.suppress(psutil.Error):
            child.kill()


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For a test whose library calls start Jupyter kernels (papermill, a pipeline): a
    runtime folder of its own for their connection files, and the slow lane (tests/lanes.py)."""
    runtime = tmp_path / "jupyter-runtime"
    runtime.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    return runtime

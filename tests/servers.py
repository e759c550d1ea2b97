"""Servers the tests start and always stop: a PostgreSQL cluster of their own and an
``mlflow server``, both on 127.0.0.1 only.

Used by the ``postgres_tracking_uri`` fixture (tests/conftest.py) and by tests that stop a
tracking server in the middle of a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlnb._net import free_port

__all__ = ["MlflowServer", "free_port", "mlflow_server", "postgres_database"]

HOST = "127.0.0.1"
#: a first start imports MLflow in each worker and migrates an empty database's schema:
#: 15-35 s on 2 cores (most of it imports), 5-10 s once the bytecode is cached
MLFLOW_START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0

# Process-wide settings a test (or mlnb itself) may have put in the environment; the
# server gets its configuration from its command line only.
_SERVER_ENV_DROP = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
)


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


# -- PostgreSQL ------------------------------------------------------------------------
def _postgres_bin() -> Path:
    """``bin/`` of the highest PostgreSQL version installed from Debian's packages."""

    def version(folder: Path) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in folder.parent.name.split("."))
        except ValueError:
            return (0,)

    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found = [b for b in found if (b / "pg_ctl").exists()]
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run "
            "`make test`, which installs it (`apt-get install -y postgresql`) and runs "
            "the tests.",
            pytrace=False,
        )
    return max(found, key=version)


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        details = (done.stdout + done.stderr).strip()
        if log is not None:
            details += f"\n--- {log} ---\n{log_tail(log)}"
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{details}", pytrace=False)


@contextlib.contextmanager
def postgres_database(folder: Path) -> Iterator[str]:
    """A PostgreSQL cluster of its own (not the system's) on 127.0.0.1 with an empty
    database ``mlflow``; yields its SQLAlchemy URI and stops the cluster at the end."""
    bindir = _postgres_bin()
    folder.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    if as_root:
        # initdb refuses to run as root: the cluster belongs to ``postgres``, in a folder
        # that user can reach (pytest's temporary folders are private to root).
        base = Path(tempfile.mkdtemp(prefix="mlnb-pg-"))
        base.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    else:
        base = folder
        prefix = []
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    sockets.mkdir(parents=True, exist_ok=True)
    if as_root:
        log.touch()
        for path in (base, sockets, log):
            shutil.chown(path, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        _run(
            [
                *prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "mlnb",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ],
            "initdb",
        )  # fmt: skip
        options = (
            f"-p {port} -k {sockets} -c listen_addresses={HOST} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        started = True  # from here on, ``pg_ctl stop`` is always tried
        _run(
            [*prefix, str(bindir / "pg_ctl"), "-w", "-t", "60", "-D", str(data), "-l", str(log),
             "-o", options, "start"],
            f"starting PostgreSQL on {HOST}:{port}",
            log,
        )  # fmt: skip
        _run(
            [str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", "mlnb", "mlflow"],
            "createdb mlflow",
            log,
        )
        yield f"postgresql+psycopg2://mlnb@{HOST}:{port}/mlflow"
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=120,
                check=False,
            )
        if as_root:
            with contextlib.suppress(OSError):
                shutil.copy(log, folder / "server.log")  # kept with the test's files
            shutil.rmtree(base, ignore_errors=True)


# -- MLflow server -----------------------------------------------------------------------
class MlflowServer:
    """An ``mlflow server`` process group on 127.0.0.1 that can be stopped and started
    again on the same port (and backend)."""

    def __init__(
        self,
        backend_store_uri: str,
        artifacts_dir: Path,
        port: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.backend_store_uri = backend_store_uri
        self.workers = workers
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = self.artifacts_dir.parent / f"mlflow-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = MLFLOW_START_TIMEOUT) -> None:
        """Start the server and wait until ``/health`` answers 200."""
        if self.running:
            return
        if port_open(self.port):
            pytest.fail(f"port {self.port} is already in use; cannot start MLflow on it")
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("_MLFLOW_SERVER")}
        for key in _SERVER_ENV_DROP:
            env.pop(key, None)
        # No huey job runner: one process less, and no folder left in /dev/shm per start.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", self.artifacts_dir.as_uri(),
            "--host", HOST, "--port", str(self.port),
        ]  # fmt: skip
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        with self.log.open("ab") as out:
            out.write(f"\n=== {' '.join(command)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                pytest.fail(
                    f"mlflow server on port {self.port} exited with code {code} before it "
                    f"answered /health; its log ({self.log}):\n{log_tail(self.log)}",
                    pytrace=False,
                )
            if self._healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"mlflow server on port {self.port} did not answer /health within "
                    f"{timeout:.0f} s; its log ({self.log}):\n{log_tail(self.log)}",
                    pytrace=False,
                )
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM the whole process group (SIGKILL if it lingers); returns once the port
        is closed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            pgid = proc.pid  # start_new_session: the group id is the leader's pid
            _signal_group(pgid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
            # Workers of the group may outlive the leader for a moment.
            deadline = time.monotonic() + STOP_TIMEOUT
            while _group_alive(pgid):
                if time.monotonic() > deadline:
                    _signal_group(pgid, signal.SIGKILL)
                    deadline = time.monotonic() + STOP_TIMEOUT
                time.sleep(0.1)
        deadline = time.monotonic() + STOP_TIMEOUT
        while port_open(self.port):
            if time.monotonic() > deadline:
                pytest.fail(f"port {self.port} is still open after the server was stopped")
            time.sleep(0.1)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group is alive (zombies, which an init that does not
    reap orphans may keep around, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after "(comm)": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def mlflow_server(
    backend_store_uri: str,
    artifacts_dir: Path,
    port: int | None = None,
    *,
    workers: int | None = None,
) -> Iterator[MlflowServer]:
    """An ``mlflow server`` on 127.0.0.1 that proxies artifacts (clients see
    ``mlflow-artifacts:`` URIs) into ``artifacts_dir``; always stopped at the end.

    ``workers`` defaults to MLflow's (4 uvicorn workers, about 30 s to start on 2 cores);
    1 starts in a few seconds."""
    server = MlflowServer(backend_store_uri, artifacts_dir, port, workers)
    try:
        server.start()
        yield server
    finally:
        server.stop()

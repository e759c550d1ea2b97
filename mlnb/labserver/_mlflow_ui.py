"""The MLflow UI started from the sidebar: ``mlnb ui`` as a background process of the
Jupyter server, bound to 127.0.0.1, one per project store, reused while it answers and
stopped with the server.

Starting takes from a few seconds to a minute or more on a busy machine (MLflow imports its
server), so no request waits for it: ``ensure`` starts the process and answers at once, and
the sidebar asks again until the UI answers (``ready``). A UI already answering on the
default port (``mlnb ui`` started by the user) is reused when it serves this store (it knows
a run of it); else the server starts its own, on the default port when that is free and on a
free port otherwise, so that no link goes to a UI of another store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from mlnb._net import port_is_free
from mlnb.labserver._errors import LabError

__all__ = ["MlflowUi", "UiState"]

HOST = "127.0.0.1"
DEFAULT_PORT = 5000  # `mlnb ui`'s own default, so links match a UI the user started
START_TIMEOUT = 600.0  # s without an answer before a start counts as failed (see the log)


class UiState(NamedTuple):
    url: str
    started: bool  # this call started it
    ready: bool  # it answers now (else: still starting; ask again)


@dataclass
class _Start:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    since: float = field(default_factory=time.monotonic)
    ready: bool = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def _answers(url: str, run_id: str | None) -> bool:
    """Whether the MLflow UI at ``url`` answers (and knows ``run_id``, when given)."""
    probe = f"{url}/api/2.0/mlflow/runs/get?run_id={run_id}" if run_id else f"{url}/health"
    try:
        with urllib.request.urlopen(probe, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` or one of its children listens on ``port``: the UI that
    answers there is the one started here, not another store's that won the port first."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for process in tree:
        try:
            listing = getattr(process, "net_connections", None) or process.connections  # <6.0
            connections = listing(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return True
    return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class MlflowUi:
    """MLflow UIs started by this server, one per project folder."""

    def __init__(self) -> None:
        self._starts: dict[Path, _Start] = {}
        self._lock = threading.Lock()

    def running_url(self, project: Path) -> str | None:
        """The URL of the UI this server started for ``project``, once it answered and while
        its process lives."""
        with self._lock:
            start = self._starts.get(project)
        if start is None or not start.ready or start.proc.poll() is not None:
            return None
        return start.url

    def has_own(self, project: Path) -> bool:
        """Whether this server started a UI for ``project`` (starting or answering): then
        ``ensure`` needs no run of the store to tell its UI from another's."""
        with self._lock:
            return project in self._starts

    def ensure(self, project: Path, run_id: str | None) -> UiState:
        """A UI on ``project``'s store: started now when there is none, else the one that
        is starting or answers. ``run_id``, a run of the store, tells a UI of this store from
        another's. Raises LabError when the UI this server started exited or never answered."""
        with self._lock:  # one start at a time: two clicks start one UI
            start = self._starts.get(project)
            if start is not None:
                state = self._check(project, start)
                if state is not None:
                    return state
            default = f"http://{HOST}:{DEFAULT_PORT}"
            if run_id and _answers(default, run_id):
                return UiState(default, started=False, ready=True)
            return self._launch(project, DEFAULT_PORT if port_is_free(DEFAULT_PORT, HOST) else None)

    def _check(self, project: Path, start: _Start) -> UiState | None:
        """The state of the UI being started for ``project``; None when it is gone and a new
        one is to be started (another process took its port)."""
        if start.proc.poll() is None:
            if start.ready or _answers(start.url, None):
                if start.ready or _listens(start.proc.pid, start.port):
                    start.ready = True
                    return UiState(start.url, started=False, ready=True)
                # another process answers on that port, so ours can never bind it
                self._forget(project, stop=True)
                if start.port == DEFAULT_PORT:
                    return None  # another project's UI won the default port: a free one
                raise LabError(  # a free port taken at once: not a race to retry blindly
                    503,
                    f"another process answers on {start.url}, not the MLflow UI started here",
                    f"try again, or run `mlnb ui --port PORT` in a terminal in {project}",
                )
            if time.monotonic() - start.since < START_TIMEOUT:
                return UiState(start.url, started=False, ready=False)
            self._forget(project, stop=True)
            raise LabError(
                503,
                f"the MLflow UI did not answer on {start.url} within {START_TIMEOUT:.0f} s",
                f"see {start.log_path}, or run `mlnb ui` in a terminal in {project}",
            )
        self._forget(project, stop=False)
        if start.port == DEFAULT_PORT and not start.ready and not port_is_free(DEFAULT_PORT, HOST):
            return None  # another UI bound the default port between the check and the start
        tail = _tail(start.log_path)
        said = f": {tail}" if tail else ""
        raise LabError(
            503,
            f"the MLflow UI exited (status {start.proc.returncode}){said}",
            f"see {start.log_path}, or run `mlnb ui` in a terminal in {project}",
        )

    def _forget(self, project: Path, *, stop: bool) -> None:
        start = self._starts.pop(project)
        if stop:
            self._stop(start.proc)

    def _launch(self, project: Path, port: int | None) -> UiState:
        from mlnb._net import free_port
        from mlnb.config import get_settings

        port = port if port is not None else free_port(HOST)
        log_path = get_settings(project).home / "mlflow-ui.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "mlnb", "ui",
            "--host", HOST, "--port", str(port),
            "--workers", "1",  # one person's UI: one worker starts fastest
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=project,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with its workers
            )
        start = _Start(proc, port, log_path)
        self._starts[project] = start
        return UiState(start.url, started=True, ready=False)

    def stop(self) -> None:
        """Stop every UI this server started (at the server's shutdown)."""
        with self._lock:
            procs = [start.proc for start in self._starts.values()]
            self._starts.clear()
        for proc in procs:
            self._stop(proc)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped (hung) UI handles it too
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

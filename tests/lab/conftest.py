"""A real ``jupyter lab`` on 127.0.0.1 with a token, in a project of its own (the example
notebooks copied in, an embedded MLflow store), shared by the handler and browser tests."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import _ENV_KEYS, NOTEBOOKS
from tests.servers import free_port, log_tail

LAB_START_TIMEOUT = 120.0
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "test-artifacts" / "lab"


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {} if token == "" else {"Authorization": f"token {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=180)

    def log_tail(self) -> str:
        return log_tail(self.log, 60)


def _make_project(root: Path, migrated_store: Path) -> None:
    (root / ".mlnb").mkdir(parents=True)
    db = root / ".mlnb" / "mlflow.db"
    shutil.copy(migrated_store, db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((root / ".mlnb" / "artifacts" / "0").as_uri(),),
        )
    conn.close()
    for name in ("train.ipynb", "serve.ipynb"):
        shutil.copy(NOTEBOOKS / name, root / name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item (the browser tests screenshot failures)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Iterator[Lab]:
    """``jupyter lab --allow-root`` serving a fresh project; stopped at the end."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "project"
    _make_project(root, migrated_store)
    home = base / "jupyter"
    # no pop-up asking to fetch news from the internet
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}', encoding="utf-8"
    )
    # no "Select Kernel" dialog: notebooks start their own kernel (python3 from .venv)
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(
        '{"autoStartDefaultKernel": true}', encoding="utf-8"
    )
    token = "mlnb-test-token"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _ENV_KEYS}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),  # no user settings of this machine
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    command = [
        sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
        f"--IdentityProvider.token={token}", "--ip", "127.0.0.1", "--port", str(port),
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = base / "jupyter-lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    server = Lab(url, token, root, log, process)
    try:
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited ({process.returncode}):\n{server.log_tail()}")
            try:
                with server.client() as client:
                    if client.get("/api/status").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in time:\n{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.copy(log, ARTIFACTS / "jupyter-lab.log") if ARTIFACTS.is_dir() else None

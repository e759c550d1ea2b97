"""Helpers shared by the export and serve tests: a project with a registered model, tagged
notebooks, and a real `mlnb serve` process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.servers import free_port

MODEL_NAME = "bc"


def code(source: str, *tags: str) -> object:
    return new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


def write_notebook(path: Path, *cells: object) -> Path:
    nb = new_notebook(
        cells=[new_markdown_cell("# service"), *cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, path)
    return path


SERVE_CELLS = (
    code("import mlnb\nimport pandas as pd", "mlnb:export"),
    code(
        f'model = mlnb.load_model("models:/{MODEL_NAME}/latest")\n'
        "FEATURES = list(model.feature_names_in_)",
        "mlnb:export",
    ),
    code(
        "def predict(df: pd.DataFrame) -> list[int]:\n"
        '    """Class of each row."""\n'
        "    return model.predict(df[FEATURES]).tolist()",
        "mlnb:export",
    ),
    code(
        "from sklearn.datasets import load_breast_cancer\n"
        "example = load_breast_cancer(as_frame=True).data.head(3)",
        "mlnb:example",
    ),
    code(
        "import matplotlib  # exploration only\nraise RuntimeError('never runs in the service')",
        "mlnb:skip",
    ),
    code("predict(example)"),
)


@contextlib.contextmanager
def project_at(root: Path) -> Iterator[Path]:
    """An empty project at ``root`` (the working directory meanwhile), for module-scoped
    fixtures."""
    import pytest

    from tests.conftest import _ENV_KEYS, reset_tracking

    (root / ".mlnb").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        for key in _ENV_KEYS:
            mp.delenv(key, raising=False)
        mp.chdir(root)
        reset_tracking()
        try:
            yield root
        finally:
            reset_tracking()


@contextlib.contextmanager
def registered_project(root: Path) -> Iterator[Path]:
    """A project at ``root`` (the working directory meanwhile) whose registry holds the
    example model ``bc``: for module-scoped fixtures, so the model is trained once."""
    with project_at(root):
        register_model()
        yield root


def register_model() -> None:
    """Train the example pipeline and register it as `bc` in the current project."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mlnb

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    mlnb.start_run(experiment_name="train")
    mlnb.log_model(model, "model", registered_model_name=MODEL_NAME)
    mlnb.end_run()


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@contextlib.contextmanager
def running_service(folder: Path, log: Path, *args: str, **env: str) -> Iterator[RunningService]:
    """``mlnb serve folder --port PORT *args`` with ``env`` added to the environment."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "serve", str(folder), "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlnb serve exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlnb serve did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield RunningService(url, process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

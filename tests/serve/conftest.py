"""A project with two versions of the example model (aliases champion -> 1, challenger -> 2),
a training profile, and a service exported from a notebook whose model fails on demand
(``mean radius == -999``) and which defines a fallback for /predict."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serving import MODEL_NAME, code, registered_project, write_notebook

SENTINEL = -999.0

SAFE_CELLS = (
    code("import mlnb\nimport pandas as pd", "mlnb:export"),
    code(
        f'model = mlnb.load_model("models:/{MODEL_NAME}@champion")\n'
        "FEATURES = list(model.feature_names_in_)\n"
        f"SENTINEL = {SENTINEL}",
        "mlnb:export",
    ),
    code(
        "def predict(df: pd.DataFrame) -> list[int]:\n"
        '    """Class of each row; fails on purpose when mean radius is the sentinel."""\n'
        "    if (df['mean radius'] == SENTINEL).any():\n"
        "        raise RuntimeError('the model failed on purpose (sentinel input)')\n"
        "    return model.predict(df[FEATURES]).tolist()\n\n\n"
        "@mlnb.fallback('/predict')\n"
        "def baseline(df: pd.DataFrame) -> list[int]:\n"
        '    """The most frequent class of the training data."""\n'
        "    return [1] * len(df)\n\n\n"
        "@mlnb.endpoint('/raw')\n"
        "def raw(df: pd.DataFrame) -> list[int]:\n"
        '    """Like predict, without a fallback."""\n'
        "    return predict(df)\n\n\n"
        "@mlnb.endpoint('/double')\n"
        "def double(x: float) -> float:\n"
        '    """A typed endpoint: twice x (fails on the sentinel)."""\n'
        "    if x == SENTINEL:\n"
        "        raise RuntimeError('failed on purpose')\n"
        "    return 2 * x\n\n\n"
        "@mlnb.fallback('/double')\n"
        "def zero(x: float) -> float:\n"
        "    return 0.0",
        "mlnb:export",
    ),
    code(
        "from sklearn.datasets import load_breast_cancer\n"
        "example = load_breast_cancer(as_frame=True).data.head(3)",
        "mlnb:example",
    ),
)


def register_second_version() -> None:
    """Version 2 of `bc`: a much more regularised model (some answers differ)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import mlnb

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    # the same 30 inputs as version 1, of which the pipeline uses two
    pick = ColumnTransformer([("keep", "passthrough", ["mean radius", "mean texture"])])
    pipeline = make_pipeline(pick, LogisticRegression(C=1e-4, max_iter=200)).fit(X, y)
    mlnb.start_run(experiment_name="train")
    mlnb.log_model(pipeline, "model", registered_model_name=MODEL_NAME)
    mlnb.end_run()


def set_alias(alias: str, version: str) -> None:
    from mlflow import MlflowClient

    from mlnb.config import get_settings
    from mlnb.tracking import get_client

    client: MlflowClient = get_client(get_settings())
    client.set_registered_model_alias(MODEL_NAME, alias, version)


@dataclass
class Safe:
    root: Path
    folder: Path  # exported with a profile and the challenger pinned (shadow)
    profile: Path
    notebook: Path

    def body(self, n: int = 1, **changes: Any) -> dict[str, Any]:
        records = json.loads((self.folder / "example.json").read_text())["records"]
        rows = [dict(records[i % len(records)]) for i in range(n)]
        for row in rows:
            row.update(changes)
        return {"records": rows}


@pytest.fixture(scope="module")
def safe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Safe]:
    from sklearn.datasets import load_breast_cancer

    from mlnb.export import export_notebook
    from mlnb.monitor import profile

    with registered_project(tmp_path_factory.mktemp("safe") / "project") as root:
        register_second_version()
        set_alias("champion", "1")
        set_alias("challenger", "2")
        X = load_breast_cancer(as_frame=True).data
        profile_path = profile(X, name="breast-cancer", log=False).save(root / "profile.json")
        notebook = write_notebook(root / "safe.ipynb", *SAFE_CELLS)
        export_notebook(
            notebook,
            root / "svc",
            verify=False,
            profile=profile_path,
            challenger=f"models:/{MODEL_NAME}@challenger",
        )
        yield Safe(root, root / "svc", profile_path, notebook)


class LoopClient:
    """httpx over ASGITransport, driven from sync tests: the app runs on an event loop of
    its own thread, which keeps running between calls (shadow calls finish after the
    answer, as in a server)."""

    def __init__(self, app: Any) -> None:
        import httpx

        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service", timeout=60
        )

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._run(self.client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._run(self.client.post(url, **kwargs))

    def close(self) -> None:
        self._run(self.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def app_client(folder: Path, **env: str) -> Iterator[LoopClient]:
    """The service in this process, configured by ``env``; its background threads are
    stopped afterwards."""
    from mlnb.serve import create_app

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        app = create_app(folder)
    client = LoopClient(app)
    try:
        yield client
    finally:
        client.close()
        app.state.runtime.close()


def metric(text: str, name: str) -> float | None:
    """The value of one sample line (``name`` with its labels) of a /metrics page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None

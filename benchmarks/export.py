"""``mlnb export`` wall time and the exported service's cold start, against anchors measured
in the same run.

In a fresh temporary project the example's model is trained and registered as
``notebooks/train.ipynb`` does (StandardScaler + LogisticRegression on scikit-learn's breast
cancer data, logged by ``mlnb.log_model``: skops), and ``notebooks/serve.ipynb`` is copied
in. Each figure is the median of ``REPEATS`` (3) runs, each in a fresh process, as a user
runs it from a shell:

* ``mlnb export serve.ipynb -o out --force``: wall time of the command, which includes the
  verified start of the service in a fresh process and its answers to the example;
  target at most 5 s;
* ``mlnb export ... --parity``, against ``papermill serve.ipynb out.ipynb`` alone (papermill's
  own time on that notebook, run just before); target at most papermill + 2 s;
* cold start of ``mlnb serve out`` until the first 200 of ``POST /predict`` with the example,
  against the same for a hand-written FastAPI app that loads the same pinned model file with
  ``skops.io.load`` (the trusted types recorded in its MLmodel) under ``uvicorn app:app``
  (the anchor; target at most 1.5x), and for ``mlflow models serve -m models:/NAME/1
  --env-manager local`` for reference.

The machine's load average is printed with the figures: on 2 shared cores, wall times move
with it; the ratios are measured back to back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    REPO,
    clean_env,
    fmt_ratio,
    fmt_time,
    median,
    module_main,
    row,
    sqlite_uri,
    temp_project,
)
from benchmarks.serving import MODEL_NAME, Server, _bin, _free_port, mlflow_serve_command

REPEATS = int(os.environ.get("MLNB_BENCH_REPEATS", "3"))
TARGET_EXPORT_S = 5.0
TARGET_PARITY_EXTRA_S = 2.0
TARGET_START_RATIO = 1.5

HANDWRITTEN_APP = '''\
"""A minimal server for a skops model, as one writes it by hand."""

import pandas as pd
import skops.io
from fastapi import FastAPI
from pydantic import BaseModel

model = skops.io.load({path!r}, trusted={trusted!r})
app = FastAPI()


class PredictRequest(BaseModel):
    records: list[dict[str, float]]


@app.post("/predict")
def predict(request: PredictRequest):
    return {{"predictions": model.predict(pd.DataFrame(request.records)).tolist()}}
'''


def _register(project: Path) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mlnb

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    mlnb.start_run(experiment_name="export-bench")
    try:
        mlnb.log_model(model, "model", registered_model_name=MODEL_NAME)
    finally:
        mlnb.end_run()
    shutil.copy(REPO / "notebooks" / "serve.ipynb", project / "serve.ipynb")


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return elapsed


def _start_up(
    label: str, cmd: list[str], cwd: Path, env: dict[str, str], url: str, body: bytes, log: Path
) -> float:
    server = Server(label, cmd, cwd, env, url, body, log)
    try:
        server.wait_ready()
        return float(server.startup)
    finally:
        server.stop()


def _repeat(measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(REPEATS)]


def run() -> dict[str, Any]:
    with temp_project("export") as project:
        return _run(project)


def _run(project: Path) -> dict[str, Any]:
    _register(project)
    env = clean_env({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    mlnb = [sys.executable, "-m", "mlnb"]
    load_before = os.getloadavg()[0]

    export = _repeat(
        lambda: _timed([*mlnb, "export", "serve.ipynb", "-o", "out", "--force"], project, env)
    )
    papermill = _repeat(
        lambda: _timed(
            [_bin("papermill"), "serve.ipynb", "executed.ipynb", "--no-progress-bar"], project, env
        )
    )
    parity = _repeat(
        lambda: _timed(
            [*mlnb, "export", "serve.ipynb", "-o", "out", "--force", "--parity"], project, env
        )
    )

    out = project / "out"
    body = (out / "example.json").read_bytes()
    meta = json.loads((out / "mlnb-service.json").read_text())
    model = meta["models"][0]
    model_dir = out / model["path"]
    data = model_dir / model["serialization"]["data"]
    trusted = list(model["serialization"].get("trusted_types") or []) or None
    app_dir = project / "handwritten"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(HANDWRITTEN_APP.format(path=str(data), trusted=trusted))
    logs = project / "logs"
    logs.mkdir()
    serve_env = {k: v for k, v in env.items() if not k.startswith("MLNB_")}

    def mlnb_serve() -> float:
        port = _free_port()
        return _start_up(
            "mlnb serve",
            [*mlnb, "serve", str(out), "--port", str(port)],
            project,
            serve_env,
            f"http://127.0.0.1:{port}/predict",
            body,
            logs / "mlnb.log",
        )

    def hand() -> float:
        port = _free_port()
        cmd = [_bin("uvicorn"), "app:app", "--host", "127.0.0.1", "--port", str(port)]
        return _start_up(
            "hand-written FastAPI",
            cmd,
            app_dir,
            serve_env,
            f"http://127.0.0.1:{port}/predict",
            body,
            logs / "hand.log",
        )

    def mlflow_serve() -> float:
        port = _free_port()
        cmd = mlflow_serve_command(port)
        records = json.dumps({"dataframe_records": json.loads(body)["records"]}).encode()
        return _start_up(
            "mlflow models serve",
            cmd,
            project,
            {**serve_env, "MLFLOW_TRACKING_URI": sqlite_uri(project)},
            f"http://127.0.0.1:{port}/invocations",
            records,
            logs / "mlflow.log",
        )

    mlnb_starts, hand_starts = [], []
    for _ in range(REPEATS):  # interleaved: both see the same load
        hand_starts.append(hand())
        mlnb_starts.append(mlnb_serve())
    mlflow_starts = _repeat(mlflow_serve)
    load_after = os.getloadavg()[0]

    e, p, q = median(export), median(papermill), median(parity)
    s, h, m = median(mlnb_starts), median(hand_starts), median(mlflow_starts)
    figures = {
        "export_s": export,
        "papermill_s": papermill,
        "parity_s": parity,
        "mlnb_serve_start_s": mlnb_starts,
        "handwritten_start_s": hand_starts,
        "mlflow_serve_start_s": mlflow_starts,
    }
    rows = [
        row(
            "export: mlnb export (verified start included)",
            fmt_time(e),
            f"hand-written app start {fmt_time(h)}",
            fmt_ratio(e / h),
            f"<= {TARGET_EXPORT_S:.0f} s",
            e <= TARGET_EXPORT_S,
        ),
        row(
            "export: mlnb export --parity vs papermill",
            fmt_time(q),
            f"papermill {fmt_time(p)}",
            fmt_ratio(q / p),
            f"<= papermill + {TARGET_PARITY_EXTRA_S:.0f} s",
            q <= p + TARGET_PARITY_EXTRA_S,
        ),
        row(
            "export: mlnb serve cold start (to first 200)",
            fmt_time(s),
            f"hand-written {fmt_time(h)}",
            fmt_ratio(s / h),
            f"<= {TARGET_START_RATIO}x",
            s / h <= TARGET_START_RATIO,
        ),
        row(
            "export: mlnb serve cold start vs mlflow models serve",
            fmt_time(s),
            f"mlflow models serve {fmt_time(m)}",
            fmt_ratio(s / m),
        ),
    ]
    notes = [
        f"export: medians of {REPEATS} fresh-process runs; load average {load_before:.2f} "
        f"before, {load_after:.2f} after; raw seconds "
        + json.dumps({k: [round(x, 2) for x in v] for k, v in figures.items()}),
    ]
    return {"rows": rows, "notes": notes, "figures": figures}


if __name__ == "__main__":
    module_main(run, {})

"""``%mlnb model``'s path against MLflow's own ``log_model`` with requirement inference.

The same fitted pipeline (StandardScaler + LogisticRegression on scikit-learn's breast
cancer data) is logged and registered inside an active run, on the embedded SQLite store of
a fresh temporary project, each side in a fresh process:

* mlnb:   ``mlnb.log_model(model, "model", registered_model_name="bench")`` (the flavor's
  requirements passed explicitly);
* MLflow: ``mlflow.sklearn.log_model(model, name="model", registered_model_name="bench2")``
  (no ``pip_requirements``: MLflow infers them).

Before the timed calls each side has fitted the model, started its run and imported what a
user would have imported already (``mlflow.sklearn`` for MLflow; mlnb imports it off the
caller's path while the run starts, and that background thread is waited for). The first
(cold) call is reported separately; it is also the warm-up. The figure is the median of
the following calls (5 for mlnb, 3 for MLflow, whose calls take seconds each). Every call
must have registered a new model version.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._common import (
    artifact_location,
    fmt_ratio,
    fmt_time,
    median,
    module_main,
    row,
    run_module,
    sqlite_uri,
    temp_project,
)

N_CALLS = 5  # timed calls after the cold one (mlnb)
N_BASELINE_CALLS = 3  # MLflow: each call takes seconds, mostly requirement inference


def _fit() -> Any:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


def _timed(call: Any, n: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    call()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        warm.append(time.perf_counter() - started)
    return cold, warm


def _check_versions(client: Any, name: str, calls: int) -> int:
    versions = client.search_model_versions(f"name='{name}'")
    if len(versions) != calls:
        raise RuntimeError(
            f"registered model {name!r} has {len(versions)} versions, expected {calls}"
        )
    return len(versions)


def side_mlnb() -> dict[str, Any]:
    with temp_project("log_model-mlnb") as project:
        import mlflow

        import mlnb
        from mlnb.tracking._session import session

        model = _fit()
        mlnb.start_run(experiment_name="bench")
        run = session().run
        assert run is not None
        if run.background is not None:
            run.background.join(60)
        requirements: list[str] = []

        def call() -> None:
            info = mlnb.log_model(model, "model", registered_model_name="bench")
            requirements[:] = info.pip_requirements

        cold, warm = _timed(call, N_CALLS)
        if run.uri != sqlite_uri(project):
            raise RuntimeError(f"mlnb tracked to {run.uri}, not {sqlite_uri(project)}")
        versions = _check_versions(mlflow.MlflowClient(run.uri), "bench", N_CALLS + 1)
        mlnb.end_run()
        return {"cold": cold, "warm": warm, "versions": versions, "requirements": requirements}


def side_mlflow() -> dict[str, Any]:
    with temp_project("log_model-mlflow") as project:
        import mlflow
        import mlflow.sklearn

        uri = sqlite_uri(project)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(uri)
        experiment_id = client.create_experiment(
            "bench", artifact_location=artifact_location(project, "bench")
        )
        model = _fit()
        mlflow.start_run(experiment_id=experiment_id)

        def call() -> None:
            mlflow.sklearn.log_model(model, name="model", registered_model_name="bench2")

        cold, warm = _timed(call, N_BASELINE_CALLS)
        versions = _check_versions(client, "bench2", N_BASELINE_CALLS + 1)
        mlflow.end_run()
        return {"cold": cold, "warm": warm, "versions": versions}


def run() -> dict[str, Any]:
    mine = run_module("log_model", ["--side", "mlnb"])
    base = run_module("log_model", ["--side", "mlflow"])
    warm, base_warm = median(mine["warm"]), median(base["warm"])
    rows = [
        row(
            "log_model + register (median of warm calls)",
            fmt_time(warm),
            f"{fmt_time(base_warm)} (mlflow.sklearn, inferred reqs)",
            f"{fmt_ratio(base_warm / warm)} faster",
        ),
        row(
            "log_model + register (first call, cold)",
            fmt_time(mine["cold"]),
            fmt_time(base["cold"]),
            f"{fmt_ratio(base['cold'] / mine['cold'])} faster",
        ),
    ]
    notes = [
        f"log_model: median of {len(mine['warm'])} (mlnb) and {len(base['warm'])} (MLflow) "
        "calls after the cold one; mlnb calls "
        + ", ".join(fmt_time(t) for t in mine["warm"])
        + "; MLflow calls "
        + ", ".join(fmt_time(t) for t in base["warm"]),
        f"log_model: versions registered mlnb {mine['versions']}, MLflow {base['versions']}; "
        f"mlnb's explicit requirements: {', '.join(mine['requirements'])}",
    ]
    return {"rows": rows, "notes": notes, "data": {"mlnb": mine, "mlflow": base}}


if __name__ == "__main__":
    module_main(run, {"mlnb": side_mlnb, "mlflow": side_mlflow})

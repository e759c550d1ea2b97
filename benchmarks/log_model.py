"""``%mlnb model``'s path against MLflow's own ``log_model`` with requirement inference.

Two fitted models, each logged and registered inside an active run, on the embedded SQLite
store of a fresh temporary project, each side in a fresh process:

* ``pipeline``: StandardScaler + LogisticRegression on scikit-learn's breast cancer data;
* ``forest``: a 50-tree RandomForestClassifier on the same data, which MLflow 3.17 only
  saves (as skops) when told to trust ``sklearn.tree._tree.Tree``.

The sides:

* mlnb:   ``mlnb.log_model(model, "model", registered_model_name=...)`` (what ``%mlnb model``
  calls): the serialization chosen from the model (skops, trusted types computed from it and
  pinned by hash), the requirements passed explicitly;
* MLflow: ``mlflow.sklearn.log_model(model, name="model", registered_model_name=...)``, with
  ``skops_trusted_types=["sklearn.tree._tree.Tree"]`` for the forest (what a user has to
  write), no ``pip_requirements`` (MLflow infers them).

Before the timed calls each side has fitted the model, started its run and imported what a
user would have imported already (``mlflow.sklearn`` for MLflow; mlnb imports it, skops
and MLflow's map of installed packages off the caller's path once the run has started, while
a notebook trains its model; those background threads are waited for). The first
(cold) call is reported separately; it is also the warm-up. The figure is the median of
the following calls (5 for mlnb, 3 for MLflow, whose calls take seconds each). Every call
must have registered a new model version. Target: ``%mlnb model`` of the forest under 1 s,
cold and warm.

Then the first ``%mlnb model`` of the forest in a fresh Jupyter kernel, as a cell's round
trip (``%load_ext mlnb``, a cell that trains, then the model cell), against the same cell
with ``mlflow.sklearn.log_model`` in a fresh kernel:

* ``interactive``: the person reads the training cell's output for 5 s before the model
  cell, and mlnb warms model logging up in that idle time (in the kernel's main thread);
* ``queued``: the cells follow each other at once, as under papermill; nothing is warmed,
  the first model pays MLflow's import and store opening (still under way from
  ``%load_ext``), skops' import and MLflow's package map.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
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


def _fit(case: str) -> Any:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    if case == "forest":
        return RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


#: what MLflow needs to be told before it saves each case in its default format
_MLFLOW_KWARGS: dict[str, dict[str, Any]] = {
    "pipeline": {},
    "forest": {"skops_trusted_types": ["sklearn.tree._tree.Tree"]},
}
CASES = tuple(_MLFLOW_KWARGS)


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


def side_mlnb(case: str) -> dict[str, Any]:
    with temp_project(f"log_model-mlnb-{case}") as project:
        import mlflow

        import mlnb
        from mlnb.tracking import session

        model = _fit(case)
        mlnb.start_run(experiment_name="bench")
        run = session().run
        assert run is not None
        if run.background is not None:
            run.background.join(60)
        for thread in threading.enumerate():  # flavor warm-up, started by the run's start
            if thread.name == "mlnb-warm":
                thread.join(60)
        seen: dict[str, Any] = {}

        def call() -> None:
            info = mlnb.log_model(model, "model", registered_model_name="bench")
            seen.update(requirements=info.pip_requirements, format=info.serialization_note)

        cold, warm = _timed(call, N_CALLS)
        if run.uri != sqlite_uri(project):
            raise RuntimeError(f"mlnb tracked to {run.uri}, not {sqlite_uri(project)}")
        versions = _check_versions(mlflow.MlflowClient(run.uri), "bench", N_CALLS + 1)
        mlnb.end_run()
        return {"cold": cold, "warm": warm, "versions": versions, **seen}


def side_mlflow(case: str) -> dict[str, Any]:
    with temp_project(f"log_model-mlflow-{case}") as project:
        import mlflow
        import mlflow.sklearn

        uri = sqlite_uri(project)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(uri)
        experiment_id = client.create_experiment(
            "bench", artifact_location=artifact_location(project, "bench")
        )
        model = _fit(case)
        mlflow.start_run(experiment_id=experiment_id)

        def call() -> None:
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name="bench2", **_MLFLOW_KWARGS[case]
            )

        cold, warm = _timed(call, N_BASELINE_CALLS)
        versions = _check_versions(client, "bench2", N_BASELINE_CALLS + 1)
        mlflow.end_run()
        return {"cold": cold, "warm": warm, "versions": versions}


TRAIN_CELL = (
    "from sklearn.datasets import load_breast_cancer\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "X, y = load_breast_cancer(return_X_y=True)\n"
    "clf = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)"
)
KERNEL_CELLS = {
    "mlnb": ("%load_ext mlnb", "%mlnb model clf --name bench"),
    "mlflow": (
        "import mlflow, mlflow.sklearn, os\n"
        "mlflow.set_tracking_uri('sqlite:///' + os.path.abspath('.mlnb/mlflow.db'))\n"
        "mlflow.search_experiments()  # the store is created here, not in the timed cell",
        "with mlflow.start_run():\n"
        "    mlflow.sklearn.log_model(clf, name='model', registered_model_name='bench',\n"
        "                             skops_trusted_types=['sklearn.tree._tree.Tree'])",
    ),
}


def side_kernel(tool: str, idle: float) -> dict[str, Any]:
    """The first model cell's round trip in a fresh kernel (see the module's docstring)."""
    from jupyter_client.manager import start_new_kernel

    from benchmarks._common import clean_env

    with temp_project(f"log_model-kernel-{tool}") as project:
        setup, model_cell = KERNEL_CELLS[tool]
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(project), env=clean_env())
        try:

            def cell(code: str) -> float:
                started = time.perf_counter()
                reply = kc.execute_interactive(code, timeout=300, output_hook=lambda _: None)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"{code!r} failed: {reply['content'].get('evalue')}")
                return time.perf_counter() - started

            cell(setup)
            cell(TRAIN_CELL)
            time.sleep(idle)
            seconds = cell(model_cell)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        import mlflow

        versions = _check_versions(mlflow.MlflowClient(sqlite_uri(project)), "bench", 1)
        return {"seconds": seconds, "versions": versions}


def _kernel_rows() -> tuple[list[dict[str, str]], dict[str, Any]]:
    base = run_module("log_model", ["--side", "kernel-mlflow"])
    rows, data = [], {"mlflow": base}
    for mode in ("interactive", "queued"):
        mine = run_module("log_model", ["--side", f"kernel-mlnb-{mode}"])
        data[mode] = mine
        target = mode == "interactive"
        rows.append(
            row(
                f"first %mlnb model of the forest in a fresh kernel, {mode}",
                fmt_time(mine["seconds"]),
                f"{fmt_time(base['seconds'])} (mlflow.sklearn.log_model cell, fresh kernel)",
                f"{fmt_ratio(base['seconds'] / mine['seconds'])} faster",
                "< 1 s" if target else "-",
                mine["seconds"] < 1.0 if target else None,
            )
        )
    return rows, data


def _case_rows(case: str, mine: dict[str, Any], base: dict[str, Any]) -> list[dict[str, str]]:
    warm, base_warm = median(mine["warm"]), median(base["warm"])
    target = case == "forest"
    return [
        row(
            f"log_model + register, {case} (median of warm calls)",
            fmt_time(warm),
            f"{fmt_time(base_warm)} (mlflow.sklearn, inferred reqs)",
            f"{fmt_ratio(base_warm / warm)} faster",
            "< 1 s" if target else "-",
            warm < 1.0 if target else None,
        ),
        row(
            f"log_model + register, {case} (first call, cold)",
            fmt_time(mine["cold"]),
            fmt_time(base["cold"]),
            f"{fmt_ratio(base['cold'] / mine['cold'])} faster",
            "< 1 s" if target else "-",
            mine["cold"] < 1.0 if target else None,
        ),
    ]


def run() -> dict[str, Any]:
    rows: list[dict[str, str]] = []
    notes: list[str] = []
    data: dict[str, Any] = {}
    for case in CASES:
        mine = run_module("log_model", ["--side", f"mlnb-{case}"])
        base = run_module("log_model", ["--side", f"mlflow-{case}"])
        rows += _case_rows(case, mine, base)
        notes += [
            f"log_model {case}: median of {len(mine['warm'])} (mlnb) and {len(base['warm'])} "
            "(MLflow) calls after the cold one; mlnb calls "
            + ", ".join(fmt_time(t) for t in mine["warm"])
            + "; MLflow calls "
            + ", ".join(fmt_time(t) for t in base["warm"]),
            f"log_model {case}: versions registered mlnb {mine['versions']}, MLflow "
            f"{base['versions']}; mlnb saved it as {mine['format']} with the explicit "
            f"requirements {', '.join(mine['requirements'])}",
        ]
        data[case] = {"mlnb": mine, "mlflow": base}
    kernel_rows, data["kernel"] = _kernel_rows()
    rows += kernel_rows
    return {"rows": rows, "notes": notes, "data": data}


if __name__ == "__main__":
    sides: dict[str, Callable[[], Any]] = {}
    for _case in CASES:
        sides[f"mlnb-{_case}"] = functools.partial(side_mlnb, _case)
        sides[f"mlflow-{_case}"] = functools.partial(side_mlflow, _case)
    sides["kernel-mlflow"] = lambda: side_kernel("mlflow", idle=0.0)
    sides["kernel-mlnb-interactive"] = lambda: side_kernel("mlnb", idle=5.0)
    sides["kernel-mlnb-queued"] = lambda: side_kernel("mlnb", idle=0.0)
    module_main(run, sides)

"""1,000 ``log_metric`` calls: mlnb's queued writes against MLflow's synchronous ones.

Each side runs in a fresh process and a fresh temporary project (``<tmp>/.mlnb``, no
MLFLOW_TRACKING_URI), on the same kind of store: MLflow's SQLite store
``<tmp>/.mlnb/mlflow.db``.

* mlnb: ``mlnb.start_run()`` (its background provenance thread is waited for, untimed),
  then ``mlnb.log_metric("m", i, step=i)`` for i in 0..999, timed until the loop returns
  (target: at most 50 ms), then ``mlnb.flush()`` timed. All 1,000 values are then read
  back with ``MlflowClient().get_metric_history`` (the benchmark fails if any is missing).
* MLflow: ``mlflow.start_run()`` on ``sqlite:///<tmp>/.mlnb/mlflow.db``, then
  ``mlflow.log_metric("m", i, step=i)`` 1,000 times (synchronous), read back the same way.

Each side repeats this in a new run, several times; the figures are medians over rounds.
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

N_CALLS = 1000
MLNB_ROUNDS = 5
MLFLOW_ROUNDS = 3
TARGET_LOOP = 0.050  # seconds until 1,000 mlnb.log_metric calls return


def _check_history(client: Any, run_id: str, side: str) -> None:
    history = client.get_metric_history(run_id, "m")
    steps = sorted(m.step for m in history)
    values_ok = all(float(m.value) == float(m.step) for m in history)
    if steps != list(range(N_CALLS)) or not values_ok:
        raise RuntimeError(
            f"{side}: the store holds {len(history)} values of metric 'm' for run {run_id} "
            f"(expected steps 0..{N_CALLS - 1}, value == step); "
            f"missing steps: {sorted(set(range(N_CALLS)) - set(steps))[:10]}"
        )


def side_mlnb() -> dict[str, Any]:
    with temp_project("log_metric-mlnb") as project:
        started = time.perf_counter()
        import mlflow

        import mlnb
        from mlnb.tracking import session

        import_s = time.perf_counter() - started
        rounds = []
        for number in range(MLNB_ROUNDS):
            started = time.perf_counter()
            mlnb.start_run(experiment_name="bench")
            start_s = time.perf_counter() - started
            run = session().run
            assert run is not None
            if run.background is not None:
                run.background.join(60)
            mlnb.flush()

            started = time.perf_counter()
            for i in range(N_CALLS):
                mlnb.log_metric("m", i, step=i)
            loop_s = time.perf_counter() - started
            mlnb.flush()
            total_s = time.perf_counter() - started

            uri = run.uri
            if uri != sqlite_uri(project):
                raise RuntimeError(f"mlnb tracked to {uri}, not {sqlite_uri(project)}")
            _check_history(mlflow.MlflowClient(uri), run.run_id, "mlnb")
            mlnb.end_run()
            rounds.append(
                {
                    "round": number,
                    "start_run": start_s,
                    "loop": loop_s,
                    "flush": total_s - loop_s,
                    "total": total_s,
                }
            )
        return {"import": import_s, "rounds": rounds, "uri": uri}


def side_mlflow() -> dict[str, Any]:
    with temp_project("log_metric-mlflow") as project:
        started = time.perf_counter()
        import mlflow

        import_s = time.perf_counter() - started
        uri = sqlite_uri(project)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(uri)
        experiment_id = client.create_experiment(
            "bench", artifact_location=artifact_location(project, "bench")
        )
        rounds = []
        for number in range(MLFLOW_ROUNDS):
            started = time.perf_counter()
            active = mlflow.start_run(experiment_id=experiment_id)
            start_s = time.perf_counter() - started

            started = time.perf_counter()
            for i in range(N_CALLS):
                mlflow.log_metric("m", i, step=i)
            loop_s = time.perf_counter() - started

            _check_history(client, active.info.run_id, "mlflow")
            mlflow.end_run()
            rounds.append({"round": number, "start_run": start_s, "loop": loop_s, "flush": 0.0})
            rounds[-1]["total"] = loop_s
        return {"import": import_s, "rounds": rounds, "uri": uri}


def run() -> dict[str, Any]:
    mine = run_module("log_metric", ["--side", "mlnb"])
    base = run_module("log_metric", ["--side", "mlflow"])

    def med(side: dict[str, Any], key: str) -> float:
        return median([r[key] for r in side["rounds"]])

    loop, flush, total = med(mine, "loop"), med(mine, "flush"), med(mine, "total")
    base_loop = med(base, "loop")
    n_mine, n_base = len(mine["rounds"]), len(base["rounds"])
    rows = [
        row(
            f"log_metric x{N_CALLS}: until the loop returns",
            fmt_time(loop),
            f"{fmt_time(base_loop)} (mlflow.log_metric, synchronous)",
            f"{fmt_ratio(base_loop / loop)} faster",
            f"mlnb <= {fmt_time(TARGET_LOOP)}",
            loop <= TARGET_LOOP,
        ),
        row(
            f"log_metric x{N_CALLS}: loop + flush (journaled, fsynced and written)",
            f"{fmt_time(total)} (flush {fmt_time(flush)})",
            fmt_time(base_loop),
            f"{fmt_ratio(base_loop / total)} faster",
            ">= 20x faster",
            base_loop / total >= 20,
        ),
    ]
    first = mine["rounds"][0]
    notes = [
        f"log_metric: medians of {n_mine} (mlnb) and {n_base} (MLflow) rounds, each a new "
        f"run; all {N_CALLS} values read back from the store in every round",
        "log_metric: mlnb loop per round: "
        + ", ".join(fmt_time(r["loop"]) for r in mine["rounds"])
        + f"; flush per round: {', '.join(fmt_time(r['flush']) for r in mine['rounds'])}",
        f"log_metric: mlnb per call {fmt_time(loop / N_CALLS)}, MLflow per call "
        f"{fmt_time(base_loop / N_CALLS)}; first mlnb round (writer thread start-up): "
        f"loop {fmt_time(first['loop'])}",
        f"log_metric: start_run median mlnb {fmt_time(med(mine, 'start_run'))}, MLflow "
        f"{fmt_time(med(base, 'start_run'))} (not timed above); store {mine['uri']}",
    ]
    return {"rows": rows, "notes": notes, "data": {"mlnb": mine, "mlflow": base}}


if __name__ == "__main__":
    module_main(run, {"mlnb": side_mlnb, "mlflow": side_mlflow})

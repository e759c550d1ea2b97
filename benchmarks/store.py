"""Creating the embedded SQLite store: mlnb's all-or-nothing creation against MLflow's own.

Each side runs in a fresh process, with MLflow already imported (its import is not timed),
on fresh temporary projects (``<tmp>/.mlnb/mlflow.db``):

* mlnb, first store on a machine: ``ensure_store`` with an empty cache folder (MLflow's own
  ``_initialize_tables`` builds the cached empty store, which is copied into place);
* mlnb, every later store: ``ensure_store`` with the cached empty store (copy, check, WAL,
  fsync, rename);
* mlnb, a store that exists: the first ``ensure_store`` of a process (read-only check),
  then later calls (one ``stat``);
* MLflow: ``MlflowClient(uri).search_experiments()`` on a fresh file, which runs its
  migrations in place (not atomic).

``mlnb init`` in a fresh project is timed as a whole command (a process of its own; once
the empty store is cached it needs no MLflow import), after one untimed run that fills an
empty cache folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    clean_env,
    fmt_ratio,
    fmt_time,
    make_project,
    median,
    module_main,
    row,
    run_module,
    sqlite_uri,
)

ROUNDS_WARM = 7
ROUNDS_COLD = 2
ROUNDS_MLFLOW = 2
ROUNDS_INIT = 3
CALLS_CACHED = 10_000


def side_mlnb() -> dict[str, Any]:
    import os

    import mlflow  # noqa: F401  (imported before timing, as in a kernel that has it)

    from mlnb.tracking import _schema, _store

    base = Path(tempfile.mkdtemp(prefix="mlnb-bench-store-")).resolve()
    cold = []
    for number in range(ROUNDS_COLD):
        os.environ["MLNB_CACHE_DIR"] = str(base / f"cold-cache-{number}")
        _schema.schema.cache_clear()
        uri = sqlite_uri(make_project(base, f"cold-{number}"))
        started = time.perf_counter()
        status = _store.ensure_store(uri)
        cold.append(time.perf_counter() - started)
        assert status is not None and status.created and status.ready
    os.environ["MLNB_CACHE_DIR"] = str(base / "cold-cache-0")
    warm = []
    for number in range(ROUNDS_WARM):
        uri = sqlite_uri(make_project(base, f"warm-{number}"))
        started = time.perf_counter()
        status = _store.ensure_store(uri)
        warm.append(time.perf_counter() - started)
        assert status is not None and status.created and status.journal_mode == "wal"
    _store.forget_checked()
    started = time.perf_counter()
    _store.ensure_store(uri)
    first_check = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(CALLS_CACHED):
        _store.ensure_store(uri)
    cached = (time.perf_counter() - started) / CALLS_CACHED
    shutil.rmtree(base, ignore_errors=True)
    return {"cold": cold, "warm": warm, "first_check": first_check, "cached": cached}


def side_mlflow() -> dict[str, Any]:
    import logging

    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    base = Path(tempfile.mkdtemp(prefix="mlnb-bench-store-mlflow-")).resolve()
    times = []
    for number in range(ROUNDS_MLFLOW):
        uri = sqlite_uri(make_project(base, f"mlflow-{number}"))
        started = time.perf_counter()
        MlflowClient(uri).search_experiments(max_results=1)
        times.append(time.perf_counter() - started)
    shutil.rmtree(base, ignore_errors=True)
    return {"times": times}


def _time_init() -> list[float]:
    """``mlnb init`` in fresh projects, after one untimed run that fills the cache."""
    base = Path(tempfile.mkdtemp(prefix="mlnb-bench-init-")).resolve()
    env = clean_env({"MLNB_CACHE_DIR": str(base / "cache")})
    times = []
    try:
        for number in range(-1, ROUNDS_INIT):
            project = base / f"p{number}"
            (project / ".git").mkdir(parents=True)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "mlnb", "init"],
                cwd=project,
                env=env,
                capture_output=True,
                check=True,
            )
            if number >= 0:
                times.append(time.perf_counter() - started)
            if not (project / ".mlnb" / "mlflow.db").is_file():
                raise RuntimeError("mlnb init did not create the store")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return times


def run() -> dict[str, Any]:
    mine = run_module("store", ["--side", "mlnb"])
    base = run_module("store", ["--side", "mlflow"])
    init = _time_init()
    warm, cold, theirs = median(mine["warm"]), median(mine["cold"]), median(base["times"])
    rows = [
        row(
            "new store (cached empty store: copy, WAL, fsync, rename)",
            fmt_time(warm),
            f"{fmt_time(theirs)} (MLflow's migrations, in place)",
            f"{fmt_ratio(theirs / warm)} faster",
        ),
        row(
            "first store on a machine (MLflow's migrations, then copy)",
            fmt_time(cold),
            fmt_time(theirs),
            f"{fmt_ratio(theirs / cold)}",
        ),
        row("`mlnb init` in a fresh project (whole command)", fmt_time(median(init)), "-", "-"),
        row(
            "check of an existing store: first use / later uses in a process",
            f"{fmt_time(mine['first_check'])} / {fmt_time(mine['cached'])}",
            "-",
            "-",
        ),
    ]
    notes = [
        "store: mlnb new store per round: " + ", ".join(fmt_time(t) for t in mine["warm"]),
        "store: first store on a machine per round: "
        + ", ".join(fmt_time(t) for t in mine["cold"])
        + "; MLflow per round: "
        + ", ".join(fmt_time(t) for t in base["times"]),
        "store: `mlnb init` per round: " + ", ".join(fmt_time(t) for t in init),
    ]
    return {"rows": rows, "notes": notes, "data": {"mlnb": mine, "mlflow": base, "init": init}}


if __name__ == "__main__":
    module_main(run, {"mlnb": side_mlnb, "mlflow": side_mlflow})

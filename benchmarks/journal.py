"""The journal's promises in time: the group-commit window and the end of a kernel's run.

* Group-commit window: in one process, ``mlnb.log_metric`` and nothing else, 200 times with
  a pause between them; the clock stops when the write's bytes are in the journal segment
  on disk (written and fsynced by the commit thread): how long an accepted, un-flushed
  write can be lost to a kill -9 (target: at most 100 ms at the default ``commit_interval``
  of 50 ms). ``flush()`` itself commits at once; its latency is reported too.
* Shutdown to ended: a real kernel in a project whose store exists (``mlnb init``), with
  ``%load_ext mlnb``, 1,000 metrics logged and flushed, then 1,000 more left unsent; the
  clock starts at the shutdown request (``KernelManager.shutdown_kernel``) and stops when
  the run reads FINISHED in the store with all 2,000 values. jupyter_client SIGTERMs a
  kernel 2.5 s after the request: the target is a maximum under 2.5 s. The baseline is the
  same kernel without mlnb. "Cold" is the same without the flush: the kernel is asked to
  stop before its sender has even imported MLflow, so the end goes through the hand-off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    fmt_time,
    median,
    module_main,
    row,
    run_module,
    sqlite_uri,
    temp_project,
)

COMMITS = 200
KERNELS = 5
TARGET_WINDOW = 0.100
TARGET_SHUTDOWN = 2.5


def side_window() -> dict[str, Any]:
    with temp_project("journal-window"):
        import mlnb
        from mlnb.tracking import session

        mlnb.start_run(experiment_name="window")
        journal = session().journal
        mlnb.flush()
        windows, flushes = [], []
        for i in range(COMMITS):
            size = journal.segment.path.stat().st_size
            started = time.perf_counter()
            mlnb.log_metric("m", float(i), step=i)
            while journal.segment.path.stat().st_size == size:
                time.sleep(0.0005)
            windows.append(time.perf_counter() - started)
            started = time.perf_counter()
            mlnb.log_metric("f", float(i), step=i)
            journal.flush(wait_sent=False)
            flushes.append(time.perf_counter() - started)
            time.sleep(0.003)
        mlnb.end_run()
        return {"waits": windows, "flushes": flushes}


def _shutdown_once(project: Path, with_mlnb: bool, warm: bool = True) -> float:
    from jupyter_client.manager import KernelManager
    from mlflow import MlflowClient

    client = MlflowClient(sqlite_uri(project))
    before = {r.info.run_id for r in _runs(client)}  # runs of the kernels before this one
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(project), env=dict(os.environ))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    code = "import mlnb\nfor i in range(1000): mlnb.log_metric('m', float(i), step=i)"
    for cell in ["%load_ext mlnb", code] if with_mlnb else ["x = 1"]:
        kc.execute_interactive(cell, timeout=120)
    kc.stop_channels()
    started = time.perf_counter()
    km.shutdown_kernel(now=False)
    if not with_mlnb:
        return time.perf_counter() - started
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [
            r for r in _runs(client) if r.info.run_id not in before and r.info.status == "FINISHED"
        ]
        if done and len(client.get_metric_history(done[0].info.run_id, "m")) == 2000:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError("the kernel's run never ended FINISHED with 2,000 metrics")


def _runs(client: Any) -> list[Any]:
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids)) if ids else []


def side_shutdown() -> dict[str, Any]:
    with temp_project("journal-shutdown") as project:
        subprocess.run(
            [sys.executable, "-m", "mlnb", "init"], cwd=project, check=True, capture_output=True
        )
        os.environ.setdefault("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
        _shutdown_once(project, True)  # first kernel: warms the OS caches, not counted
        mine = [_shutdown_once(project, True) for _ in range(KERNELS)]
        cold = [_shutdown_once(project, True, warm=False) for _ in range(2)]
        plain = [_shutdown_once(project, False) for _ in range(KERNELS)]
        return {"mlnb": mine, "cold": cold, "plain": plain}


def run() -> dict[str, Any]:
    measured = run_module("journal", ["--side", "window"])
    window, flushes = measured["waits"], measured["flushes"]
    shutdown = run_module("journal", ["--side", "shutdown"])
    mine, plain, cold = shutdown["mlnb"], shutdown["plain"], shutdown["cold"]
    rows = [
        row(
            "journal: accepted -> fsynced (group-commit window)",
            f"median {fmt_time(median(window))}, max {fmt_time(max(window))}",
            "commit_interval 50 ms",
            "-",
            f"max <= {fmt_time(TARGET_WINDOW)}",
            max(window) <= TARGET_WINDOW,
        ),
        row(
            "journal: flush() -> fsynced",
            f"median {fmt_time(median(flushes))}, max {fmt_time(max(flushes))}",
            "-",
            "-",
        ),
        row(
            "kernel shutdown request -> run FINISHED, 1,000 metrics unsent at the request",
            f"median {fmt_time(median(mine))}, max {fmt_time(max(mine))}",
            f"median {fmt_time(median(plain))} (a kernel without mlnb)",
            f"+{fmt_time(median(mine) - median(plain))}",
            f"max < {TARGET_SHUTDOWN} s (SIGTERM)",
            max(mine) < TARGET_SHUTDOWN,
        ),
    ]
    rows.append(
        row(
            "cold: shutdown requested before the sender imported MLflow (hand-off)",
            f"median {fmt_time(median(cold))}",
            "-",
            "-",
        )
    )
    notes = [
        f"journal: {COMMITS} single writes; {KERNELS} kernels each side after one warm-up; "
        "shutdown times: " + ", ".join(fmt_time(t) for t in mine),
    ]
    return {"rows": rows, "notes": notes, "data": {"window": window, **shutdown}}


if __name__ == "__main__":
    module_main(run, {"window": side_window, "shutdown": side_shutdown})

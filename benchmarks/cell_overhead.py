"""Added wall time per executed cell with ``%load_ext mlnb`` and an active run.

Three real IPython kernels (``python3`` kernelspec from the venv) are started with
jupyter_client, each in its own fresh temporary project (``<tmp>/<kernel>/.mlnb``, no
MLFLOW_TRACKING_URI, so mlnb uses the embedded SQLite store there):

* ``plain``  - no mlnb; the cell is ``x = 1``;
* ``mlnb``   - ``%load_ext mlnb`` and ``%mlnb start`` (hooks and run live); cell ``x = 1``;
* ``metric`` - as ``mlnb``, and each cell also logs one metric:
  ``i += 1; mlnb.log_metric("m", i, step=i)``.

Each kernel knows its notebook (``MLNB_NOTEBOOK`` points at a copy of
``notebooks/train.ipynb``), as under Jupyter or papermill, so the hooks take the same path
as in real use. After a warm-up, cells are sent round-robin (the starting kernel rotates
every round), one at a time, and each round trip is timed from ``execute_request`` to both
the ``execute_reply`` and the kernel's ``idle`` status. The figure is the median
difference to the plain kernel; target: at most 1 ms.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    REPO,
    clean_env,
    fmt_ratio,
    fmt_time,
    make_project,
    median,
    module_main,
    percentile,
    row,
    temp_project,
)

N_CELLS = 1000
WARMUP_CELLS = 50
TARGET_ADDED = 1e-3  # seconds of median added time per cell
TIMEOUT = 120.0

CELL = "x = 1"
METRIC_CELL = 'i += 1\nmlnb.log_metric("m", i, step=i)'

# Setup cells, not timed. The last one waits for the run's background provenance thread
# (git, package list) so that the timed cells see mlnb's steady state.
_JOIN_BACKGROUND = (
    "from mlnb.tracking._session import session as _mlnb_session\n"
    "_mlnb_session().run.background.join(60)\n"
    "_mlnb_session().flush()"
)
SETUP = {
    "plain": ["import sys"],
    "mlnb": ["%load_ext mlnb", "%mlnb start --experiment bench", _JOIN_BACKGROUND],
    "metric": [
        "%load_ext mlnb",
        "%mlnb start --experiment bench",
        _JOIN_BACKGROUND,
        "import mlnb\ni = 0",
    ],
}
CODE = {"plain": CELL, "mlnb": CELL, "metric": METRIC_CELL}


class Kernel:
    def __init__(self, name: str, project: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        notebook = project / "bench.ipynb"
        shutil.copy(REPO / "notebooks" / "train.ipynb", notebook)
        self.name = name
        self.km, self.kc = start_new_kernel(
            startup_timeout=TIMEOUT,
            kernel_name="python3",
            cwd=str(project),
            env=clean_env({"MLNB_NOTEBOOK": str(notebook)}),
            # Keep the benchmark's cells out of the user's IPython history database (and
            # the three kernels from contending for it).
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
        )

    def execute(
        self, code: str, user_expressions: dict[str, str] | None = None
    ) -> tuple[float, dict[str, Any]]:
        """Run ``code``; (round-trip seconds, execute_reply content). Raises on an error."""
        kc = self.kc
        started = time.perf_counter()
        msg_id = kc.execute(code, user_expressions=user_expressions or {})
        while True:
            reply = kc.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        while True:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                break
        elapsed = time.perf_counter() - started
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(
                f"kernel {self.name}: cell {code!r} failed: "
                f"{content.get('ename')}: {content.get('evalue')}"
            )
        return elapsed, content

    def value(self, expression: str) -> str:
        _, content = self.execute("pass", {"v": expression})
        result = content["user_expressions"]["v"]
        if result.get("status") != "ok":
            raise RuntimeError(f"kernel {self.name}: {expression!r} failed: {result}")
        return str(result["data"]["text/plain"])

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            # Not `now`: let the kernel exit normally, so mlnb ends its run at exit.
            self.km.shutdown_kernel(now=False)


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "median": median(samples),
        "p95": percentile(samples, 95),
        "mean": sum(samples) / len(samples),
    }


def run() -> dict[str, Any]:
    names = ["plain", "mlnb", "metric"]
    kernels: dict[str, Kernel] = {}
    samples: dict[str, list[float]] = {n: [] for n in names}
    with temp_project("cell_overhead") as tmp:
        try:
            started = time.perf_counter()
            for name in names:
                kernels[name] = Kernel(name, make_project(tmp, name))
            startup = time.perf_counter() - started
            for name in names:
                for code in SETUP[name]:
                    kernels[name].execute(code)
            for number in range(WARMUP_CELLS + N_CELLS):
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed, _ = kernels[name].execute(CODE[name])
                    if number >= WARMUP_CELLS:
                        samples[name].append(elapsed)

            # The hooks were live, and every metric reached the store.
            recorded = int(kernels["mlnb"].value("len(_mlnb_session().recorder.cells)"))
            if recorded < WARMUP_CELLS + N_CELLS:
                raise RuntimeError(f"mlnb recorded only {recorded} cells; hooks not live?")
            kernels["metric"].execute(
                "import mlflow\n_mlnb_session().flush()\n"
                "_history = mlflow.MlflowClient().get_metric_history("
                "_mlnb_session().run.run_id, 'm')"
            )
            stored = int(kernels["metric"].value("len(_history)"))
            expected = WARMUP_CELLS + N_CELLS
            if stored != expected:
                raise RuntimeError(
                    f"metric kernel: {stored} of {expected} metrics in the store after flush"
                )
            uri = kernels["mlnb"].value("_mlnb_session().run.uri")
            if str(tmp) not in uri or "sqlite" not in uri:
                raise RuntimeError(f"mlnb kernel tracked to {uri}, not the temp project")
        finally:
            for kernel in kernels.values():
                kernel.shutdown()

    stats = {name: _stats(values) for name, values in samples.items()}
    base = stats["plain"]
    rows = []
    notes = [
        f"cell overhead: {N_CELLS} cells per kernel after {WARMUP_CELLS} warm-up cells, "
        "round-robin over 3 kernels; round trip = execute_request until reply and idle; "
        f"kernel start-up {fmt_time(startup / len(names))} each",
        f"cell overhead: plain kernel mean {fmt_time(base['mean'])}; "
        f"stored metrics checked: {stored}/{expected}; mlnb recorded {recorded} cells; "
        f"store {uri}",
    ]
    for name, label in (
        ("mlnb", "cell overhead: `x = 1`, mlnb loaded + run active"),
        ("metric", "cell overhead: + log_metric in each cell"),
    ):
        s = stats[name]
        added = s["median"] - base["median"]
        paired = median([a - b for a, b in zip(samples[name], samples["plain"], strict=True)])
        rows.append(
            row(
                label,
                f"{fmt_time(s['median'])} ({fmt_time(added, signed=True)}), "
                f"p95 {fmt_time(s['p95'])}",
                f"{fmt_time(base['median'])}, p95 {fmt_time(base['p95'])}",
                f"{fmt_ratio(s['median'] / base['median'])} of plain",
                f"median added <= {fmt_time(TARGET_ADDED)}",
                added <= TARGET_ADDED,
            )
        )
        notes.append(
            f"cell overhead [{name}]: median added {fmt_time(added, signed=True)} "
            f"(median of paired differences {fmt_time(paired, signed=True)}), "
            f"p95 added {fmt_time(s['p95'] - base['p95'], signed=True)}, "
            f"mean {fmt_time(s['mean'])}"
        )
    return {
        "rows": rows,
        "notes": notes,
        "data": {name: {**s, "n": len(samples[name])} for name, s in stats.items()},
    }


if __name__ == "__main__":
    module_main(run, {})

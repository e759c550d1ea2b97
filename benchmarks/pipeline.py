"""Pipelines: the two rows of issue 15, ``mlnb pipeline run`` against its anchors.

All in one fresh temporary project (``<tmp>/.mlnb``, no MLFLOW_TRACKING_URI, kernels from
the venv through JUPYTER_PATH), every run through a command line, as a user runs it:

* ``parallel`` - four independent steps that each ``time.sleep(3)``: ``--workers 2``
  against ``--workers 1`` (both ``--force``, so every step runs); targets: at least 1.8x
  faster, and a fixed cost under 1.5 s: the time from launching the command to the moment
  the first step's sleeping cell starts (each step's cell writes ``time.time()`` when it
  starts; the launch time is taken just before the command is started).
* ``chain`` - five trivial notebooks (``%load_ext mlnb``, a ``parameters`` cell, one cell
  writing a small file), a chain a -> b -> c -> d -> e. A cold ``mlnb pipeline run
  --workers 1`` (its first run in the project) against the five notebooks run one after the
  other with the ``papermill`` CLI; target: at most 0.5x.

An untimed papermill run of one notebook first warms the file cache (imports, kernel) and
creates the project's store.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from benchmarks._common import clean_env, fmt_ratio, fmt_time, module_main, row, temp_project

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
CHAIN = ("a", "b", "c", "d", "e")
PARALLEL = ("s1", "s2", "s3", "s4")
SLEEP = 3.0
TIMEOUT = 300.0
TARGET_CHAIN = 0.5  # of papermill x5
TARGET_SPEEDUP = 1.8  # workers 2 against workers 1
TARGET_FIXED = 1.5  # seconds before the first step's work starts

PAPERMILL = Path(sys.executable).with_name("papermill")


def _notebook(path: Path, params: str, cell: str) -> None:
    cells = [
        new_code_cell("%load_ext mlnb"),
        new_code_cell(params, metadata={"tags": ["parameters"]}),
        new_code_cell(cell),
    ]
    nbformat.write(new_notebook(cells=cells, metadata=META), path)


def _write_flows(root: Path) -> tuple[Path, Path]:
    """The chain's and the parallel pipeline's files (in their own folders)."""
    chain = root / "chain"
    chain.mkdir()
    lines = ["name: chain", "steps:"]
    for i, name in enumerate(CHAIN):
        _notebook(
            chain / f"{name}.ipynb",
            "n = 1",
            f"open('out_{name}.txt', 'w').write(str(n * {i + 1}))",
        )
        needs = f", needs: [{CHAIN[i - 1]}]" if i else ""
        lines.append(
            f"  - {{name: {name}, notebook: {name}.ipynb, params: {{n: {i + 2}}}{needs}, "
            f"outputs: [out_{name}.txt]}}"
        )
    (chain / "p.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    parallel = root / "parallel"
    parallel.mkdir()
    lines = ["name: parallel", "steps:"]
    for name in PARALLEL:
        _notebook(
            parallel / f"{name}.ipynb",
            f"seconds = {SLEEP}",
            "import time\n"
            "started = time.time()\n"
            "time.sleep(seconds)\n"
            f"open('out_{name}.txt', 'w').write(repr(started))",
        )
        lines.append(
            f"  - {{name: {name}, notebook: {name}.ipynb, params: {{seconds: {SLEEP}}}, "
            f"outputs: [out_{name}.txt]}}"
        )
    (parallel / "p.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return chain / "p.yaml", parallel / "p.yaml"


def _timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall time of ``command`` (which must succeed) and its stdout."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=clean_env(env), capture_output=True, text=True, timeout=TIMEOUT
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + "\n" + done.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(command)} failed (exit code {done.returncode}):\n{tail}")
    return elapsed, done.stdout


def _pipeline(spec: Path, *extra: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "mlnb", "pipeline", "run", spec.name, *extra]
    return _timed(command, spec.parent)


def _parallel(spec: Path, workers: int) -> tuple[float, float]:
    """Wall time of a forced run of the parallel pipeline on ``workers`` workers, and its
    fixed cost: from the launch to the start of the first step's sleeping cell."""
    for name in PARALLEL:
        (spec.parent / f"out_{name}.txt").unlink(missing_ok=True)
    launched = time.time()
    elapsed, stdout = _pipeline(spec, "--workers", str(workers), "--force")
    _expect(stdout, f"{len(PARALLEL)} ok")
    first = min(float((spec.parent / f"out_{n}.txt").read_text()) for n in PARALLEL)
    return elapsed, first - launched


def _papermill(folder: Path, name: str, n: int, out: Path) -> float:
    command = [
        str(PAPERMILL), f"{name}.ipynb", str(out / f"{name}.ipynb"), "-p", "n", str(n),
        "--log-level", "ERROR", "--no-progress-bar",
    ]  # fmt: skip
    return _timed(command, folder)[0]


def _expect(stdout: str, what: str) -> None:
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    if what not in last:
        raise RuntimeError(f"expected {what!r} in the pipeline's summary, got {last!r}")


def measure() -> dict[str, Any]:
    with temp_project("pipeline") as project:
        chain, parallel = _write_flows(project)
        out = project / "papermill-out"
        out.mkdir()
        _papermill(chain.parent, CHAIN[0], 2, out)  # warm-up, not timed

        papermill_each = [
            _papermill(chain.parent, name, i + 2, out) for i, name in enumerate(CHAIN)
        ]
        for name in CHAIN:  # the pipeline writes its outputs itself
            (chain.parent / f"out_{name}.txt").unlink()
        cold, stdout = _pipeline(chain, "--workers", "1")
        _expect(stdout, f"{len(CHAIN)} ok")

        one, fixed_one = _parallel(parallel, 1)
        two, fixed_two = _parallel(parallel, 2)
    return {
        "papermill_each": papermill_each,
        "papermill": sum(papermill_each),
        "cold": cold,
        "workers1": one,
        "workers2": two,
        "fixed_workers1": fixed_one,
        "fixed_workers2": fixed_two,
    }


def run() -> dict[str, Any]:
    started = time.perf_counter()
    m = measure()
    papermill, cold = m["papermill"], m["cold"]
    share = cold / papermill
    speedup = m["workers1"] / m["workers2"]
    fixed = m["fixed_workers2"]
    n = len(CHAIN)
    rows = [
        row(
            f"pipeline: {len(PARALLEL)} x sleep({SLEEP:g}), workers 2 (fixed cost)",
            f"{fmt_time(m['workers2'])} (fixed {fmt_time(fixed)})",
            f"{fmt_time(m['workers1'])} workers 1",
            f"{fmt_ratio(speedup)} faster",
            f">= {TARGET_SPEEDUP:g}x, fixed < {TARGET_FIXED:g} s",
            speedup >= TARGET_SPEEDUP and fixed < TARGET_FIXED,
        ),
        row(
            f"pipeline: cold {n}-step chain (workers 1)",
            fmt_time(cold),
            f"{fmt_time(papermill)} papermill x{n}",
            fmt_ratio(share),
            f"<= {TARGET_CHAIN:g}x",
            share <= TARGET_CHAIN,
        ),
    ]
    each = ", ".join(fmt_time(t) for t in m["papermill_each"])
    notes = [
        f"pipeline: papermill per notebook {each}; cold pipeline {fmt_time(cold / n)} per step; "
        f"fixed cost with workers 1 {fmt_time(m['fixed_workers1'])}; "
        f"benchmark took {time.perf_counter() - started:.0f} s",
    ]
    return {"rows": rows, "notes": notes, "data": m}


if __name__ == "__main__":
    module_main(run, {"measure": measure})

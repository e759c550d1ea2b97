"""Pipelines: ``mlnb pipeline run`` against running the same notebooks with papermill.

All in one fresh temporary project (``<tmp>/.mlnb``, no MLFLOW_TRACKING_URI, kernels from
the venv through JUPYTER_PATH), every run through a command line, as a user runs it:

* ``chain`` - five trivial notebooks (``%load_ext mlnb``, a ``parameters`` cell, one cell
  writing a small file), a chain a -> b -> c -> d -> e. Cold ``mlnb pipeline run --workers 1``
  against the five notebooks run one after the other with the ``papermill`` CLI (no target:
  both start one kernel per notebook). Then a re-run with nothing changed; targets: under
  2 s and under 15% of the papermill time. Then the cold run again (``--force``) with each
  step's kernel started only when the step starts (``MLNB_PIPELINE_WARM_KERNELS=0``), against
  the default, which starts the next step's fresh kernel while a step runs.
* ``parallel`` - four independent steps that each ``time.sleep(3)``: ``--workers 2`` against
  ``--workers 1`` (both ``--force``, so every step runs); target: at least 1.8x faster.

An untimed papermill run of one notebook first warms the file cache (imports, kernel).
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
TARGET_RERUN = 2.0  # seconds
TARGET_RERUN_SHARE = 0.15  # of the papermill sequential time
TARGET_SPEEDUP = 1.8  # workers 2 against workers 1

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
            f"import time\ntime.sleep(seconds)\nopen('out_{name}.txt', 'w').write('done')",
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


def _pipeline(spec: Path, *extra: str, warm: bool = True) -> tuple[float, str]:
    command = [sys.executable, "-m", "mlnb", "pipeline", "run", spec.name, *extra]
    return _timed(command, spec.parent, {"MLNB_PIPELINE_WARM_KERNELS": "1" if warm else "0"})


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
        rerun, stdout = _pipeline(chain, "--workers", "1")
        _expect(stdout, "nothing to run")
        fresh, stdout = _pipeline(chain, "--workers", "1", "--force", warm=False)
        _expect(stdout, f"{len(CHAIN)} ok")

        one, stdout = _pipeline(parallel, "--workers", "1", "--force")
        _expect(stdout, f"{len(PARALLEL)} ok")
        two, stdout = _pipeline(parallel, "--workers", "2", "--force")
        _expect(stdout, f"{len(PARALLEL)} ok")
    return {
        "papermill_each": papermill_each,
        "papermill": sum(papermill_each),
        "cold": cold,
        "rerun": rerun,
        "cold_fresh_kernels": fresh,
        "workers1": one,
        "workers2": two,
    }


def run() -> dict[str, Any]:
    started = time.perf_counter()
    m = measure()
    papermill, cold, rerun = m["papermill"], m["cold"], m["rerun"]
    share = rerun / papermill
    speedup = m["workers1"] / m["workers2"]
    n = len(CHAIN)
    rows = [
        row(
            f"pipeline: {n}-step chain, cold run (workers 1)",
            fmt_time(cold),
            f"{fmt_time(papermill)} papermill x{n}",
            fmt_ratio(cold / papermill),
        ),
        row(
            f"pipeline: {n}-step chain, kernels started ahead vs on demand",
            fmt_time(cold),
            f"{fmt_time(m['cold_fresh_kernels'])} on demand",
            fmt_ratio(m["cold_fresh_kernels"] / cold) + " faster",
        ),
        row(
            "pipeline: no-change re-run",
            fmt_time(rerun),
            f"{fmt_time(papermill)} papermill x{n}",
            f"{share * 100:.1f}%",
            f"< {TARGET_RERUN:g} s and < {TARGET_RERUN_SHARE * 100:.0f}%",
            rerun < TARGET_RERUN and share < TARGET_RERUN_SHARE,
        ),
        row(
            f"pipeline: {len(PARALLEL)} x sleep({SLEEP:g}), workers 2",
            fmt_time(m["workers2"]),
            f"{fmt_time(m['workers1'])} workers 1",
            f"{fmt_ratio(speedup)} faster",
            f">= {TARGET_SPEEDUP:g}x",
            speedup >= TARGET_SPEEDUP,
        ),
    ]
    each = ", ".join(fmt_time(t) for t in m["papermill_each"])
    notes = [
        f"pipeline: papermill per notebook {each}; cold pipeline {fmt_time(cold / n)} per step "
        f"({fmt_time((cold - papermill) / n, signed=True)} per step over papermill); "
        f"benchmark took {time.perf_counter() - started:.0f} s",
    ]
    return {"rows": rows, "notes": notes, "data": m}


if __name__ == "__main__":
    module_main(run, {"measure": measure})

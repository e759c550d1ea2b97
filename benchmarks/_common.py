"""Helpers shared by the benchmarks: temporary projects, statistics, units, result I/O.

Every benchmark module exposes ``run() -> dict`` returning ``{"rows": [...], "notes": [...]}``
and, run as ``python -m benchmarks.NAME --json``, prints that dict on one stdout line that
starts with :data:`RESULT_MARKER`. A row holds the already formatted table cells
``benchmark``, ``mlnb``, ``baseline``, ``ratio``, ``target`` and ``status`` (PASS, MISS or
"-" for figures without a target).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

RESULT_MARKER = "MLNB-BENCH-RESULT "

#: settings that would point mlnb (or MLflow) somewhere else than the temp project's store
CLEARED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLNB_PROJECT_ROOT",
    "MLNB_ARTIFACT_ROOT",
    "MLNB_FLUSH_INTERVAL",
    "MLNB_HTTP_TIMEOUT",
    "MLNB_HTTP_RETRIES",
    "MLNB_AUTOLOG_PARAMS",
    "MLNB_NOTEBOOK",
)

REPO = Path(__file__).resolve().parent.parent


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without :data:`CLEARED_ENV`, for child processes."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.setdefault("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update(extra or {})
    return env


def make_project(parent: Path | None = None, name: str = "project") -> Path:
    """A fresh folder holding ``.mlnb/`` (so mlnb uses ``<it>/.mlnb/mlflow.db``)."""
    if parent is None:
        folder = Path(tempfile.mkdtemp(prefix=f"mlnb-bench-{name}-")).resolve()
    else:
        folder = parent / name
        folder.mkdir(parents=True)
    (folder / ".mlnb").mkdir()
    return folder


@contextlib.contextmanager
def temp_project(name: str) -> Iterator[Path]:
    """A fresh temporary project used as the working directory; removed afterwards.

    MLflow and mlnb settings from the environment are removed for the duration, so mlnb
    uses its embedded SQLite store ``<project>/.mlnb/mlflow.db``.
    """
    folder = make_project(name=name)
    saved = {k: os.environ.pop(k) for k in CLEARED_ENV if k in os.environ}
    old_cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(old_cwd)
        os.environ.update(saved)
        shutil.rmtree(folder, ignore_errors=True)


def sqlite_uri(project: Path) -> str:
    """The URI of the project's embedded store, as mlnb builds it."""
    return f"sqlite:///{(project / '.mlnb' / 'mlflow.db').as_posix()}"


def artifact_location(project: Path, experiment: str) -> str:
    """Where mlnb's embedded store keeps an experiment's artifacts (used by baselines)."""
    return (project / ".mlnb" / "artifacts" / experiment).as_uri()


# -- statistics and units --------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def fmt_time(seconds: float, signed: bool = False) -> str:
    """``seconds`` with a readable unit (µs, ms or s)."""
    sign = ("+" if seconds >= 0 else "-") if signed else ("-" if seconds < 0 else "")
    value = abs(seconds)
    if value < 1e-3:
        text = f"{value * 1e6:.0f} µs"
    elif value < 1:
        text = f"{value * 1e3:.3g} ms" if value < 0.1 else f"{value * 1e3:.0f} ms"
    else:
        text = f"{value:.2f} s"
    return sign + text


def fmt_ratio(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


def row(
    benchmark: str,
    mlnb: str,
    baseline: str,
    ratio: str,
    target: str = "-",
    passed: bool | None = None,
) -> dict[str, str]:
    status = "-" if passed is None else ("PASS" if passed else "MISS")
    return {
        "benchmark": benchmark,
        "mlnb": mlnb,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "status": status,
    }


# -- processes -------------------------------------------------------------------------
def _relay_stderr(text: str, label: str) -> None:
    """Show a child's warnings and errors, not MLflow's routine INFO lines."""
    for line in text.splitlines():
        low = line.lower()
        if " info " in f" {low} " and "mlnb" not in low:
            continue
        if "mlnb:" in low or "error" in low or "traceback" in low:
            print(f"[{label}] {line}", file=sys.stderr)


def run_module(module: str, args: Sequence[str] = (), timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m benchmarks.MODULE ARGS`` in a fresh process and return its result.

    Raises RuntimeError (with the child's stderr) when it fails or prints no result.
    """
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *args]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    label = " ".join([module, *args])
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER) and proc.returncode == 0:
            _relay_stderr(proc.stderr, label)
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return result
    tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-40:])
    raise RuntimeError(f"{label} failed (exit code {proc.returncode}):\n{tail}")


def emit(result: dict[str, Any]) -> None:
    """Print ``result`` as the one machine-readable line of a child process."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def print_table(rows: Sequence[dict[str, str]]) -> None:
    headers = {
        "benchmark": "benchmark",
        "mlnb": "mlnb",
        "baseline": "baseline",
        "ratio": "ratio",
        "target": "target",
        "status": "PASS/MISS",
    }
    widths = {k: max(len(h), *(len(r[k]) for r in rows)) for k, h in headers.items()}
    line = "  ".join(h.ljust(widths[k]) for k, h in headers.items())
    print(line)
    print("  ".join("-" * widths[k] for k in headers))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in headers))


def module_main(run: Callable[[], dict[str, Any]], sides: dict[str, Callable[[], Any]]) -> None:
    """Command line of a benchmark module.

    ``--json``: run the benchmark and print its result line; ``--side NAME``: run one
    measured side (in a fresh process) and print its raw figures; no argument: run the
    benchmark and print its table.
    """
    args = sys.argv[1:]
    if args[:1] == ["--side"] and len(args) == 2:
        emit(sides[args[1]]())
    elif args == ["--json"]:
        emit(run())
    elif not args:
        result = run()
        print_table(result["rows"])
        for note in result.get("notes", []):
            print(f"  {note}")
    else:
        raise SystemExit(f"usage: python -m {sys.argv[0]} [--json | --side NAME]")

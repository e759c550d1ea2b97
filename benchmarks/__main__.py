"""``python -m benchmarks`` (``make bench``): run every benchmark and print one table.

Each benchmark runs in a fresh process of its own (so MLflow's tracking URI and mlnb's
session do not leak from one to the next), one after the other, and reports its figures as
JSON; this prints them as a table of mlnb against its baseline, measured in the same run on
the same machine. The exit code is 0 when every benchmark ran, even if a target was
missed (this is a report); it is 1 when a benchmark crashed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from benchmarks._common import print_table, row, run_module

BENCHMARKS = (
    "cell_overhead",
    "log_metric",
    "journal",
    "store",
    "log_model",
    "versioning",
    "serving",
    "export",
    "pipeline",
    "drift",
    "safety",
    "slow_clients",
    "audit",
    "contract",
)


def _environment() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    bytecode = any((Path(sys.prefix) / "lib").glob("python3*/site-packages/mlflow/__pycache__"))
    return (
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}; "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}, "
        f"MLflow bytecode cached in the venv: {'yes' if bytecode else 'no'}"
    )


def main(names: list[str]) -> int:
    os.environ.setdefault("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    print(f"environment: {_environment()}", flush=True)
    rows: list[dict[str, str]] = []
    notes: list[str] = []
    crashed = []
    started_all = time.perf_counter()
    for name in names:
        print(f"running {name} ...", flush=True)
        started = time.perf_counter()
        try:
            result = run_module(name, ["--json"], timeout=900)
        except Exception as exc:
            crashed.append(name)
            print(f"{name} CRASHED: {exc}", file=sys.stderr, flush=True)
            rows.append(row(name, "-", "-", "-", "-", None) | {"status": "CRASH"})
            continue
        elapsed = time.perf_counter() - started
        print(f"  {name} took {elapsed:.1f} s", flush=True)
        rows.extend(result["rows"])
        notes.extend(result.get("notes", []))
    total = time.perf_counter() - started_all

    print()
    print_table(rows)
    print()
    for note in notes:
        print(f"  {note}")
    print()
    print(f"environment after: {_environment()}")
    print(f"total benchmark time {total:.1f} s")
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    selected = sys.argv[1:] or list(BENCHMARKS)
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    sys.exit(main(selected))

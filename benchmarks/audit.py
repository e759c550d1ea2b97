"""What a durable audit log costs an exported service (``MLNB_AUDIT_SYNC``).

The service of the ``serving`` benchmark (the example's model, registered in a fresh
temporary project, ``notebooks/serve.ipynb`` exported) is served by ``mlnb serve`` with ONE
uvicorn worker on 127.0.0.1, the other safety nets off (``MLNB_DRIFT=off MLNB_ROUTING=off
MLNB_RESOURCES=off``) so that only the audit log differs between:

* ``off``: ``MLNB_AUDIT=off``, no record at all (the baseline);
* ``async``: the answer leaves first, a thread writes every ~50 ms (a crash loses the last
  ~50 ms of answers);
* ``write``: the answer waits until its record is written to the OS;
* ``fsync`` (the default): the answer waits until its record is ``fdatasync``-ed; requests
  waiting at the same moment share one write and one sync (group commit).

Each is driven by ``wrk`` (2 threads, one row per request) at 16 and then 64 connections
(~2 s warm-up, ~8 s measured each), on a server of its own, the four settings interleaved,
two rounds; the figure of a setting is its better round, the ratio the median of the paired
rounds' ratios (the machine's other load drifts between rounds). Target: fsync / off >= 0.9
at both connection counts. Every answer's record is counted in the audit files afterwards.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from benchmarks._common import fmt_ratio, fmt_time, median, module_main, row, temp_project
from benchmarks.safety import _start
from benchmarks.serving import (
    _get,
    _metric,
    _on_signal,
    _script,
    _stop_all,
    _train_register_export,
    run_wrk,
)

WARMUP_S = 2
DURATION_S = 8
ROUNDS = 2
LOADS = (16, 64)
TARGET = 0.9
OTHERS_OFF = {"MLNB_DRIFT": "off", "MLNB_ROUTING": "off", "MLNB_RESOURCES": "off"}
SETTINGS: dict[str, dict[str, str]] = {
    "off": {"MLNB_AUDIT": "off"},
    "async": {"MLNB_AUDIT_SYNC": "async"},
    "write": {"MLNB_AUDIT_SYNC": "write"},
    "fsync": {"MLNB_AUDIT_SYNC": "fsync"},
}


def _audited(folder: Path) -> int:
    return sum(sum(1 for _ in path.open("rb")) for path in folder.glob("predictions-*.jsonl"))


def _measure(service: Path, project: Path, script: Path, body: bytes) -> dict[str, Any]:
    results: dict[str, dict[int, list[dict[str, Any]]]] = {
        k: {n: [] for n in LOADS} for k in SETTINGS
    }
    checks: dict[str, dict[str, float]] = {}
    for round_ in range(ROUNDS):
        for key, env in SETTINGS.items():
            audit = project / "bench" / f"audit-{key}-{round_}"
            server = _start(
                f"audit {key} {round_}",
                service,
                project,
                {**OTHERS_OFF, **env, "MLNB_AUDIT_DIR": str(audit)},
                body,
            )
            try:
                for connections in LOADS:
                    run_wrk(server, script, connections, WARMUP_S)
                    res = run_wrk(server, script, connections, DURATION_S)
                    res.pop("output", None)
                    results[key][connections].append(res)
                time.sleep(2)  # the requests still in flight when wrk stopped finish
                base = server.url.rsplit("/", 1)[0]
                metrics = _get(f"{base}/metrics")
                answered = _metric(metrics, "mlnb_predictions_total", 'endpoint="/predict"')
            finally:
                server.stop()
            if key != "off":
                found = _audited(audit)
                check = checks.setdefault(key, {"answered": 0.0, "audited": 0.0})
                check["answered"] += answered
                check["audited"] += found
    return {"results": results, "checks": checks}


def run() -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.perf_counter()
    try:
        with temp_project("audit") as project:
            service, _, X = _train_register_export(project)
            (project / "bench").mkdir()
            values = {k: float(v) for k, v in X.iloc[0].items()}
            script, body = _script(project / "bench", "records", {"records": [values]})
            measured = _measure(service, project, script, body)
    finally:
        _stop_all()
    results, checks = measured["results"], measured["checks"]
    rows = []
    notes = []
    for connections in LOADS:
        off = results["off"][connections]
        best = {k: max(results[k][connections], key=lambda r: r["rps"]) for k in SETTINGS}
        for key in ("fsync", "write", "async"):
            paired = [
                b["rps"] / a["rps"] for a, b in zip(off, results[key][connections], strict=True)
            ]
            ratio = median(paired)
            mine = best[key]
            failures = sum(r["failures"] for r in results[key][connections])
            rows.append(
                row(
                    f"audit {key} vs off: req/s and p99, {connections} conns",
                    f"{mine['rps']:,.0f} req/s, p99 {fmt_time(mine['p99'])}"
                    + (f" {failures} FAILED" if failures else ""),
                    f"{best['off']['rps']:,.0f} req/s, p99 {fmt_time(best['off']['p99'])} off",
                    f"{fmt_ratio(ratio)} (median of {len(paired)} paired rounds)",
                    f">= {TARGET:.2f}x" if key == "fsync" else "-",
                    (ratio >= TARGET and not failures) if key == "fsync" else None,
                )
            )
            notes.append(
                f"audit {key} at {connections} conns: paired ratios "
                + ", ".join(fmt_ratio(r) for r in paired)
                + "; req/s per round "
                + ", ".join(f"{r['rps']:,.0f}" for r in results[key][connections])
                + " (off "
                + ", ".join(f"{r['rps']:,.0f}" for r in off)
                + "); p99 per round "
                + ", ".join(fmt_time(r["p99"]) for r in results[key][connections])
                + "; load average "
                + ", ".join(str(r["load_average"]) for r in results[key][connections])
            )
    for key, check in checks.items():
        notes.append(
            f"audit {key}: {check['audited']:.0f} audit lines for {check['answered']:.0f} "
            "answers (warm-up included)"
        )
    notes.append(f"audit: whole benchmark {time.perf_counter() - started:.0f} s")
    return {"rows": rows, "notes": notes, "data": measured}


if __name__ == "__main__":
    module_main(run, {})

"""Slow clients against an exported service: does a normal client still get its answers?

A notebook whose ``predict(x: float)`` doubles x is exported and served by ``mlnb serve``
(ONE uvicorn worker on 127.0.0.1, default settings: header-read timeout 10 s, keep-alive
5 s, connection limit derived from the open-files limit). One normal client sends
``POST /predict`` requests one after the other (a new connection each, as a browser or a
load balancer's health check would) for ``MEASURE_S`` seconds:

* alone (the baseline), then
* while 1,000 slowloris connections, opened just before, each send part of a request and
  then one header line every half second (``MEASURE_S`` is shorter than the header-read
  timeout, so all 1,000 are held by the server while the client is measured).

Figures: the normal client's p50, p99 and slowest answer in both phases, its failed
requests, and how long the server took to close all 1,000 slow connections (from when the
last was opened; about the header-read timeout). Target: every normal request answered,
the slowest within 1 s, all slow connections closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import fmt_time, module_main, percentile, row, temp_project
from benchmarks.serving import Server, _bin, _env, _free_port, _on_signal, _stop_all

SLOW = 1000
MEASURE_S = 7.0
CLOSE_DEADLINE_S = 60.0

NOTEBOOK_CELL = 'def predict(x: float) -> float:\n    """Twice x."""\n    return 2 * x'


def _export(project: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from mlnb.export import export_notebook

    notebook = project / "double.ipynb"
    cell = new_code_cell(NOTEBOOK_CELL, metadata={"tags": ["mlnb:export"]})
    nbformat.write(
        new_notebook(
            cells=[cell],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        ),
        notebook,
    )
    export_notebook(notebook, project / "svc", verify=False)
    return project / "svc"


def _normal_client(url: str, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    # no connection kept alive: each request connects anew, as the slow ones compete
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = http.post(url, json={"x": 2.0}).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
            time.sleep(0.02)
    return {
        "n": len(latencies),
        "failures": failures,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
    }


async def _slowloris(port: int, opened: threading.Event, result: dict[str, Any]) -> None:
    closed: list[float] = []

    async def watch(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        closed.append(time.monotonic())

    writers, watchers = [], []
    for _ in range(SLOW):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        writers.append(writer)
        watchers.append(asyncio.ensure_future(watch(reader)))
    all_open = time.monotonic()
    opened.set()
    deadline = all_open + CLOSE_DEADLINE_S
    while len(closed) < SLOW and time.monotonic() < deadline:
        for writer in writers:
            if not writer.is_closing():
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-Dribble: 1\r\n")
        await asyncio.sleep(0.5)
    for writer in writers:
        writer.close()
    result["closed_by_server"] = len(closed)
    result["all_closed_s"] = max(closed) - all_open if len(closed) == SLOW else None
    await asyncio.gather(*watchers, return_exceptions=True)


def run() -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with temp_project("slow-clients") as project:
            return _run(project)
    finally:
        _stop_all()


def _run(project: Path) -> dict[str, Any]:
    service = _export(project)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/predict"
    server = Server(
        "mlnb serve",
        [_bin("mlnb"), "serve", str(service), "--port", str(port)],
        project,
        _env({"MLNB_LOG_LEVEL": "WARNING", "MLNB_AUDIT": "off"}),
        url,
        b'{"x": 1.0}',
        project / "serve.log",
    )
    try:
        server.wait_ready()
        alone = _normal_client(url, MEASURE_S)
        opened = threading.Event()
        slow: dict[str, Any] = {}
        attack = threading.Thread(target=lambda: asyncio.run(_slowloris(port, opened, slow)))
        attack.start()
        opened.wait(120)
        during = _normal_client(url, MEASURE_S)
        attack.join(CLOSE_DEADLINE_S + 60)
    finally:
        server.stop()
    passed = (
        during["failures"] == 0 and during["max"] < 1.0 and slow.get("closed_by_server") == SLOW
    )
    closed_s = slow.get("all_closed_s")
    rows = [
        row(
            f"normal client during slowloris ({SLOW:,} conns): p50 / p99 / max",
            f"{fmt_time(during['p50'])} / {fmt_time(during['p99'])} / {fmt_time(during['max'])}",
            f"{fmt_time(alone['p50'])} / {fmt_time(alone['p99'])} / {fmt_time(alone['max'])}",
            f"{during['p99'] / alone['p99']:.1f}x p99",
            "all answered, max < 1 s",
            passed,
        ),
        row(
            "slowloris connections closed by the server",
            f"{slow.get('closed_by_server', 0):,} of {SLOW:,}"
            + (f" in {closed_s:.1f} s" if closed_s is not None else ""),
            "before (issue 13): 0 of 1,000 in 20 s",
            "-",
            "all, ~10 s (the header-read timeout)",
            slow.get("closed_by_server") == SLOW,
        ),
    ]
    notes = [
        f"normal client: {during['n']} answered and {during['failures']} failed during the "
        f"slowloris, {alone['n']} and {alone['failures']} alone (baseline column), "
        f"{MEASURE_S:.0f} s each, one worker"
    ]
    return {"rows": rows, "notes": notes, "alone": alone, "during": during, "slow": slow}


if __name__ == "__main__":
    module_main(run, {})

"""Requests per second and latency of an exported service against the usual ways to serve.

In a fresh temporary project (``<tmp>/.mlnb``, no MLFLOW_TRACKING_URI) the example's model is
trained as ``notebooks/train.ipynb`` trains it (StandardScaler + LogisticRegression on
scikit-learn's breast cancer data, 30 features), registered with
``mlnb.log_model(..., registered_model_name="breast-cancer-classifier")`` and
``notebooks/serve.ipynb`` is exported with ``mlnb.export.export_notebook``. Then three servers,
each with ONE uvicorn worker on 127.0.0.1, are started one at a time and driven by ``wrk``
(2 threads, a Lua script POSTing one row; ~2 s warm-up, then ~10 s measured) at 16 and at
64 connections:

* mlnb: ``mlnb serve DIR`` with every production feature on: request ids, JSON logs (to a
  file), Prometheus metrics, a body limit and an API key (``MLNB_API_KEY``; wrk sends
  ``X-API-Key``). Micro-batching is on by default; at 64 connections it is also measured
  off (``MLNB_BATCHING=0``) for reference;
* ``mlflow models serve -m models:/breast-cancer-classifier/1 --env-manager local``
  (``{"dataframe_records": [...]}`` on /invocations);
* a hand-written FastAPI app as a tutorial would write it: ``mlflow.sklearn.load_model``, a
  pydantic body ``{"records": [...]}``, a sync ``def`` endpoint doing
  ``model.predict(pd.DataFrame(records))``, ``uvicorn app:app --workers 1`` with its default
  access log (to a file).

wrk and the server share the machine's cores (2 here), the same for every server. Any
non-2xx answer or socket error is a failure and is reported. The floor is the raw
``model.predict`` time (1 and 64 rows, median of many calls). Targets, against the
hand-written app: at 16 connections at least the same throughput and a p99 no worse; at 64
connections (micro-batching on) at least twice its throughput.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks._common import (
    REPO,
    clean_env,
    fmt_ratio,
    fmt_time,
    median,
    module_main,
    row,
    sqlite_uri,
    temp_project,
)
from mlnb._net import free_port as _free_port

MODEL_NAME = "breast-cancer-classifier"
API_KEY = "bench-secret-key-0123456789"
WARMUP_S = 2
DURATION_S = 10
WRK_THREADS = 2
LOADS = (16, 64)
TARGET_16_THROUGHPUT = 1.0  # mlnb / hand-written req/s at 16 connections
TARGET_64_THROUGHPUT = 2.0  # mlnb (micro-batching) / hand-written req/s at 64 connections
START_TIMEOUT = 90.0

HANDWRITTEN_APP = '''\
"""A minimal model server, as a tutorial writes it."""

import mlflow.sklearn
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

model = mlflow.sklearn.load_model("models:/{name}/1")
app = FastAPI()


class PredictRequest(BaseModel):
    records: list[dict[str, float]]


@app.post("/predict")
def predict(request: PredictRequest):
    df = pd.DataFrame(request.records)
    return {{"predictions": model.predict(df).tolist()}}
'''

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- processes -------------------------------------------------------------------------
_RUNNING: list[subprocess.Popen[bytes]] = []


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and everything it started (it leads its own process group)."""
    if process.poll() is None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    # children of a server that exited on its own may still hold the group
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process in _RUNNING:
        _RUNNING.remove(process)


def _stop_all() -> None:
    for process in list(_RUNNING):
        _stop(process)


def _on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(f"interrupted by signal {signum}")


def _post(
    url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, body, {"content-type": "application/json", **(headers or {})}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return str(response.read().decode())


class Server:
    """One server process (its own process group), its URL, body and headers."""

    def __init__(
        self,
        label: str,
        cmd: list[str],
        cwd: Path,
        env: dict[str, str],
        url: str,
        body: bytes,
        log_path: Path,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self.url = url
        self.body = body
        self.headers = headers or {}
        self.log_path = log_path
        self.started = time.perf_counter()
        with log_path.open("ab") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _RUNNING.append(self.process)
        self.startup = float("nan")

    def wait_ready(self) -> Any:
        """Poll with the benchmark's own request until it answers 200; return the answer."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited at start-up (code {self.process.returncode}):\n"
                    + self.tail()
                )
            try:
                status, answer = _post(self.url, self.body, self.headers, timeout=5)
                if status == 200:
                    self.startup = time.perf_counter() - self.started
                    return json.loads(answer)
                raise RuntimeError(f"{self.label} answered {status}: {answer[:500]!r}")
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.label} did not answer within {START_TIMEOUT:.0f} s:\n" + self.tail()
                )
            time.sleep(0.2)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        _stop(self.process)


# -- wrk -------------------------------------------------------------------------------
def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"cannot read the duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/sec, p50/p90/p99 (``--latency``), requests, non-2xx and socket errors."""
    result: dict[str, Any] = {
        "non_2xx": 0,
        "connect": 0,
        "read": 0,
        "write": 0,
        "timeout": 0,
    }
    match = re.search(r"Requests/sec:\s*([\d.]+)", output)
    if not match:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    result["rps"] = float(match.group(1))
    match = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if match:
        result["requests"] = int(match.group(1))
        result["duration"] = _seconds(match.group(2))
    section = output.split("Latency Distribution", 1)
    if len(section) != 2:
        raise RuntimeError(f"no latency distribution in wrk's output (--latency):\n{output}")
    for pct, value in re.findall(r"^\s*(\d+)%\s+([\d.]+\w+)\s*$", section[1], re.M):
        result[f"p{pct}"] = _seconds(value)
    match = re.search(r"Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", output)
    if match:
        result["mean"] = _seconds(match.group(1))
        result["max"] = _seconds(match.group(3))
    match = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    if match:
        result["non_2xx"] = int(match.group(1))
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if match:
        for key, value in zip(("connect", "read", "write", "timeout"), match.groups(), strict=True):
            result[key] = int(value)
    result["failures"] = sum(result[k] for k in ("non_2xx", "connect", "read", "write", "timeout"))
    return result


def run_wrk(server: Server, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    cmd = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
    ]
    for name, value in server.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(server.url)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.label} died under load:\n{server.tail()}")
    result = parse_wrk(proc.stdout)
    result["connections"] = connections
    result["load_average"] = round(os.getloadavg()[0], 2)
    result["output"] = proc.stdout
    return result


def drive(server: Server, script: Path, loads: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    """Warm up, then measure, at each number of connections."""
    results = {}
    for connections in loads:
        run_wrk(server, script, connections, WARMUP_S)
        results[connections] = run_wrk(server, script, connections, DURATION_S)
    return results


# -- mlnb's own metrics ------------------------------------------------------------------
def _metric(text: str, name: str, *labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include every one of ``labels``."""
    total = 0.0
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        if head.split("{", 1)[0] == name and all(label in head for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


def mlnb_counters(server: Server) -> dict[str, float]:
    base = server.url.rsplit("/", 1)[0]
    text = _get(f"{base}/metrics", server.headers)
    non_200 = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlnb_requests_total{")
        and 'endpoint="/predict"' in line
        and 'status="200"' not in line
    )
    return {
        "ok": _metric(text, "mlnb_requests_total", 'endpoint="/predict"', 'status="200"'),
        "non_200": non_200,
        "batches": _metric(text, "mlnb_batch_requests_count", 'endpoint="/predict"'),
        "batched_requests": _metric(text, "mlnb_batch_requests_sum", 'endpoint="/predict"'),
    }


# -- the project: model, export ------------------------------------------------------------
def _train_register_export(project: Path) -> tuple[Path, Any, Any]:
    """Train and register the example's model, export serve.ipynb; (service dir, model, X)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mlnb
    from mlnb.export import export_notebook

    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, _ = train_test_split(
        data.data, data.target, test_size=0.25, random_state=42, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    model.fit(X_train, y_train)
    mlnb.start_run(experiment_name="serving-bench")
    try:
        info = mlnb.log_model(model, "model", registered_model_name=MODEL_NAME)
    finally:
        mlnb.end_run()
    if info.registered_model_version != "1":
        raise RuntimeError(f"registered version {info.registered_model_version}, expected 1")
    notebook = project / "serve.ipynb"
    shutil.copy(REPO / "notebooks" / "serve.ipynb", notebook)
    service = project / "service"
    export_notebook(notebook, service)
    return service, model, X_test


def _predict_floor(model: Any, X: Any) -> dict[str, float]:
    """Median time of ``model.predict`` on a DataFrame of 1 and of 64 rows."""
    out = {}
    for rows, calls in ((1, 1000), (64, 500)):
        frame = X.iloc[:rows]
        for _ in range(50):
            model.predict(frame)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            model.predict(frame)
            times.append(time.perf_counter() - started)
        out[f"predict_{rows}"] = median(times)
    return out


def mlflow_serve_command(port: int) -> list[str]:
    """``mlflow models serve`` of the benchmark's registered model, one worker, on ``port``."""
    return [
        _bin("mlflow"),
        *("models", "serve", "-m", f"models:/{MODEL_NAME}/1"),
        *("--env-manager", "local", "-w", "1", "-p", str(port)),
    ]


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = clean_env(extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for key in ("MLNB_API_KEY", "MLNB_BATCHING", "MLNB_MAX_BODY_BYTES", "MLNB_LOG_LEVEL"):
        if key not in extra:
            env.pop(key, None)
    return env


def _script(folder: Path, name: str, body: dict[str, Any]) -> tuple[Path, bytes]:
    data = json.dumps(body, separators=(",", ":"))
    path = folder / f"{name}.lua"
    path.write_text(WRK_SCRIPT.format(body=data), encoding="utf-8")
    return path, data.encode()


def _fmt_rps(value: float) -> str:
    return f"{value:,.0f} req/s"


def _cell(res: dict[str, Any]) -> str:
    text = f"{_fmt_rps(res['rps'])} (p50 {fmt_time(res['p50'])}, p99 {fmt_time(res['p99'])})"
    if res["failures"]:
        text += f" {res['failures']} FAILED"
    return text


def _describe(label: str, res: dict[str, Any]) -> str:
    return (
        f"{label} @{res['connections']} conns: {_fmt_rps(res['rps'])}, "
        f"{res.get('requests', '?')} requests, mean {fmt_time(res.get('mean', float('nan')))}, "
        f"p50 {fmt_time(res['p50'])}, p90 {fmt_time(res.get('p90', float('nan')))}, "
        f"p99 {fmt_time(res['p99'])}, max {fmt_time(res.get('max', float('nan')))}; "
        f"non-2xx {res['non_2xx']}, socket errors connect {res['connect']} read {res['read']} "
        f"write {res['write']} timeout {res['timeout']}; 1-min load average after "
        f"{res['load_average']:.2f}"
    )


def run() -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _on_signal)
    started_all = time.perf_counter()
    try:
        with temp_project("serving") as project:
            return _run(project, started_all)
    finally:
        _stop_all()


def _run(project: Path, started_all: float) -> dict[str, Any]:
    started = time.perf_counter()
    service, model, X = _train_register_export(project)
    setup_time = time.perf_counter() - started
    floor = _predict_floor(model, X)
    row_values = {k: float(v) for k, v in X.iloc[0].items()}
    expected = int(model.predict(X.iloc[:1])[0])
    work = project / "bench"
    work.mkdir()
    script_records, body_records = _script(work, "records", {"records": [row_values]})
    script_mlflow, body_mlflow = _script(work, "mlflow", {"dataframe_records": [row_values]})
    app_dir = work / "handwritten"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(HANDWRITTEN_APP.format(name=MODEL_NAME), encoding="utf-8")
    tracking = {"MLFLOW_TRACKING_URI": sqlite_uri(project)}

    results: dict[str, dict[int, dict[str, Any]]] = {}
    startups: dict[str, float] = {}
    extra: dict[str, Any] = {}

    def check(label: str, answer: Any) -> None:
        predictions = answer.get("predictions") if isinstance(answer, dict) else answer
        if list(predictions or []) != [expected]:
            raise RuntimeError(f"{label} answered {answer!r}, expected prediction {expected}")

    # (c) the hand-written FastAPI app
    port = _free_port()
    hand = Server(
        "hand-written FastAPI",
        [_bin("uvicorn"), "app:app", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)],
        app_dir,
        _env(tracking),
        f"http://127.0.0.1:{port}/predict",
        body_records,
        work / "handwritten.log",
    )
    try:
        check(hand.label, hand.wait_ready())
        startups["hand"] = hand.startup
        results["hand"] = drive(hand, script_records, LOADS)
    finally:
        hand.stop()

    # (b) mlflow models serve
    port = _free_port()
    mlf = Server(
        "mlflow models serve",
        [*mlflow_serve_command(port), "-h", "127.0.0.1"],
        work,
        _env(tracking),
        f"http://127.0.0.1:{port}/invocations",
        body_mlflow,
        work / "mlflow.log",
    )
    try:
        check(mlf.label, mlf.wait_ready())
        startups["mlflow"] = mlf.startup
        results["mlflow"] = drive(mlf, script_mlflow, LOADS)
    finally:
        mlf.stop()

    # (a) mlnb serve, production settings; micro-batching default (on), then off
    for key, batching, loads in (("mlnb", None, LOADS), ("mlnb_nobatch", "0", (64,))):
        port = _free_port()
        settings = {
            "MLNB_API_KEY": API_KEY,
            "MLNB_MAX_BODY_BYTES": str(256 * 1024),
            "MLNB_LOG_LEVEL": "INFO",
        }
        if batching is not None:
            settings["MLNB_BATCHING"] = batching
        log_path = work / f"{key}.log"
        server = Server(
            f"mlnb serve ({'batching off' if batching == '0' else 'default: batching on'})",
            [
                _bin("mlnb"),
                "serve",
                str(service),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            project,
            _env(settings),
            f"http://127.0.0.1:{port}/predict",
            body_records,
            log_path,
            headers={"X-API-Key": API_KEY},
        )
        try:
            answer = server.wait_ready()
            check(server.label, answer)
            startups[key] = server.startup
            status, _ = _post(server.url, body_records, timeout=5)  # no key: refused
            if status != 401:
                raise RuntimeError(f"{server.label} answered {status} without the API key")
            if not answer.get("request_id"):
                raise RuntimeError(f"{server.label} answered without a request id: {answer}")
            routes = json.loads(_get(server.url.rsplit("/", 1)[0] + "/version", server.headers))
            batching_on = next(
                r["batching"] for r in routes["endpoints"] if r["path"] == "/predict"
            )
            if batching_on != (batching != "0"):
                raise RuntimeError(f"{server.label}: /predict batching is {batching_on}")
            per_load = {}
            for connections in loads:
                run_wrk(server, script_records, connections, WARMUP_S)
                before = mlnb_counters(server)
                res = run_wrk(server, script_records, connections, DURATION_S)
                after = mlnb_counters(server)
                delta = {k: after[k] - before[k] for k in after}
                res["server_non_200"] = int(delta["non_200"])
                # wrk counts statuses >= 400 only; the server counts every non-200
                res["failures"] += max(0, int(delta["non_200"]) - res["non_2xx"])
                res["mean_batch"] = (
                    delta["batched_requests"] / delta["batches"] if delta["batches"] else None
                )
                res["server_ok"] = int(delta["ok"])
                per_load[connections] = res
            results[key] = per_load
        finally:
            server.stop()
        lines = log_path.read_text(errors="replace").splitlines()
        json_lines = sum(1 for line in lines if line.startswith("{") and '"request_id"' in line)
        extra[f"{key}_log_lines"] = json_lines
        if json_lines < sum(r.get("requests", 0) for r in per_load.values()):
            raise RuntimeError(f"{server.label}: only {json_lines} JSON log lines were written")

    return _report(results, floor, startups, extra, setup_time, started_all)


def _report(
    results: dict[str, dict[int, dict[str, Any]]],
    floor: dict[str, float],
    startups: dict[str, float],
    extra: dict[str, Any],
    setup_time: float,
    started_all: float,
) -> dict[str, Any]:
    mlnb16, mlnb64 = results["mlnb"][16], results["mlnb"][64]
    hand16, hand64 = results["hand"][16], results["hand"][64]
    mlf16, mlf64 = results["mlflow"][16], results["mlflow"][64]
    off64 = results["mlnb_nobatch"][64]
    hand_label = "hand-written FastAPI"
    thr16 = mlnb16["rps"] / hand16["rps"]
    p99_16 = mlnb16["p99"] / hand16["p99"]
    thr64 = mlnb64["rps"] / hand64["rps"]
    rows = [
        row(
            "serve 1 row, 16 conns: req/s vs hand-written",
            _cell(mlnb16),
            f"{_cell(hand16)} {hand_label}",
            fmt_ratio(thr16),
            f">= {TARGET_16_THROUGHPUT:.2f}x",
            thr16 >= TARGET_16_THROUGHPUT,
        ),
        row(
            "serve 1 row, 16 conns: p99 vs hand-written",
            fmt_time(mlnb16["p99"]),
            fmt_time(hand16["p99"]),
            fmt_ratio(p99_16),
            "<= 1.00x (no worse)",
            mlnb16["p99"] <= hand16["p99"],
        ),
        row(
            "serve 1 row, 64 conns (batching): req/s vs hand-written",
            _cell(mlnb64),
            f"{_cell(hand64)} {hand_label}",
            fmt_ratio(thr64),
            f">= {TARGET_64_THROUGHPUT:.2f}x",
            thr64 >= TARGET_64_THROUGHPUT,
        ),
        row(
            "serve 1 row, 64 conns (batching): p99 vs hand-written",
            fmt_time(mlnb64["p99"]),
            fmt_time(hand64["p99"]),
            fmt_ratio(mlnb64["p99"] / hand64["p99"]),
        ),
        row(
            "serve 1 row, 64 conns, batching off: req/s vs hand-written",
            _cell(off64),
            _cell(hand64),
            fmt_ratio(off64["rps"] / hand64["rps"]),
        ),
        row(
            "serve 1 row, 16 conns: req/s vs mlflow models serve",
            _cell(mlnb16),
            f"{_cell(mlf16)} mlflow models serve",
            fmt_ratio(mlnb16["rps"] / mlf16["rps"]),
        ),
        row(
            "serve 1 row, 64 conns (batching): req/s vs mlflow models serve",
            _cell(mlnb64),
            f"{_cell(mlf64)} mlflow models serve",
            fmt_ratio(mlnb64["rps"] / mlf64["rps"]),
        ),
    ]
    failures = {
        label: sum(r["failures"] for r in per_load.values()) for label, per_load in results.items()
    }
    mlnb_failed = failures["mlnb"] + failures["mlnb_nobatch"]
    rows.append(
        row(
            "serve: failed requests (non-2xx + socket errors)",
            f"{mlnb_failed} (batching off: {failures['mlnb_nobatch']})",
            f"hand-written {failures['hand']}, mlflow {failures['mlflow']}",
            "-",
            "0 on every server",
            not any(failures.values()),
        )
    )
    rows.append(
        row(
            "serve: raw model.predict (floor)",
            f"1 row {fmt_time(floor['predict_1'])}; 64 rows {fmt_time(floor['predict_64'])} "
            f"({fmt_time(floor['predict_64'] / 64)}/row)",
            "-",
            "-",
        )
    )
    labels = {
        "hand": "hand-written FastAPI (sync def, access log to a file)",
        "mlflow": "mlflow models serve",
        "mlnb": "mlnb serve (API key, JSON logs to a file, metrics, body limit; batching on)",
        "mlnb_nobatch": "mlnb serve (same, MLNB_BATCHING=0)",
    }
    notes = [
        f"serving: 1 uvicorn worker each, wrk -t{WRK_THREADS} --latency, {WARMUP_S} s warm-up "
        f"then {DURATION_S} s per load, one row per request, {os.cpu_count()} CPUs shared by "
        "wrk and the server",
    ]
    for key, per_load in results.items():
        for res in per_load.values():
            text = _describe(labels[key], res)
            if "mean_batch" in res:
                mean_batch = res["mean_batch"]
                text += (
                    f"; server-side 200s {res['server_ok']}, non-200 {res['server_non_200']}"
                    + (f", mean {mean_batch:.1f} requests per model call" if mean_batch else "")
                )
            notes.append(text)
    notes.append(
        "serving: start-up until the first 200: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in startups.items())
        + f"; mlnb JSON log lines written: {extra.get('mlnb_log_lines')} (batching on), "
        f"{extra.get('mlnb_nobatch_log_lines')} (off); train + register + export "
        f"{setup_time:.1f} s; whole benchmark {time.perf_counter() - started_all:.0f} s"
    )
    slim = {
        key: {str(c): {k: v for k, v in r.items() if k != "output"} for c, r in per_load.items()}
        for key, per_load in results.items()
    }
    return {
        "rows": rows,
        "notes": notes,
        "data": {"results": slim, "floor": floor, "startups": startups, **extra},
    }


if __name__ == "__main__":
    module_main(run, {})

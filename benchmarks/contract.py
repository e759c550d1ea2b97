"""The exported service against its own OpenAPI document: ``schemathesis run --checks all``.

``notebooks/serve.ipynb`` exported with a training profile, its fallback and version 2 in
shadow (StandardScaler + LogisticRegression on scikit-learn's breast cancer data, as in the
``safety`` benchmark) is served by ``mlnb serve`` (one uvicorn worker on
127.0.0.1) with ``MLNB_API_KEY`` set, so the 401s and schemathesis's ``ignored_auth`` check
are exercised along with everything a key-less service does (a run without a key took as
long again, ~6 min here, and would not fit the 15 min a benchmark may take). It generates
:data:`EXAMPLES` cases per operation in every phase (examples, coverage, fuzzing),
deterministically (``--generation-deterministic``: the same cases on every run). Target:
0 failures.

:func:`schemathesis_run` is also what ``tests/serve/test_contract.py`` runs, with
fewer examples.

One setting departs from schemathesis's defaults, in :data:`CONFIG`: 413 counts as a
rejection of a body (``negative_data_rejection``) and as an allowed answer to a valid one
(``positive_data_acceptance``). A body larger than ``MLNB_MAX_BODY_BYTES`` (1 MiB) is
refused with 413 before it is read, whatever it holds, and every operation that takes a
body documents that 413; JSON Schema has no keyword for a body's size in bytes, so
schemathesis cannot know that 10,000 records of 30 long numbers exceed it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import clean_env, fmt_time, module_main, row, temp_project
from benchmarks.safety import MODEL_NAME, champion_notebook
from benchmarks.serving import Server, _bin, _env, _free_port, _on_signal, _stop_all

EXAMPLES = 500
API_KEY = "contract-bench-key"
CONFIG = """\
# tests and benchmarks of mlnb's exported services (see benchmarks/contract.py)
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429", "5xx"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
"""


def schemathesis_run(
    base_url: str,
    folder: Path,
    *,
    examples: int,
    api_key: str | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """``schemathesis run --checks all`` against ``BASE_URL/openapi.json`` with ``examples``
    cases per operation, deterministic; its JSON report (``failures``, ``errors``,
    ``test_cases``, ``exit_code``...) plus ``output``, the tail of what it printed.
    ``folder`` receives the config, the report and the log."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG)
    report = folder / "report.json"
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(examples),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "60",
        "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    if api_key is not None:
        cmd += ["--header", f"X-API-Key: {api_key}"]
    done = subprocess.run(
        cmd,
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-200:])
    (folder / "schemathesis.log").write_text(done.stdout + done.stderr)
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report (exit {done.returncode}):\n{output}")
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = output
    result["returncode"] = done.returncode
    return result


def _prepare(project: Path) -> Path:
    """Register two versions, promote 1, profile, export with version 2 in shadow."""
    import nbformat

    from mlnb.export import export_notebook

    nb, profile_path, _ = champion_notebook(project, "contract-bench")
    notebook = project / "serve.ipynb"
    nbformat.write(nb, notebook)
    service = project / "service"
    export_notebook(
        notebook,
        service,
        profile=profile_path,
        challenger=f"models:/{MODEL_NAME}/2",
        verify=False,
    )
    return service


def _one(label: str, service: Path, project: Path, env: dict[str, str]) -> dict[str, Any]:
    body = json.dumps(json.loads((service / "example.json").read_text())).encode()
    port = _free_port()
    server = Server(
        label,
        [_bin("mlnb"), "serve", str(service), "--host", "127.0.0.1", "--port", str(port)],
        project,
        _env({"MLNB_LOG_LEVEL": "WARNING", **env}),
        f"http://127.0.0.1:{port}/predict",
        body,
        project / "bench" / f"{label.replace(' ', '-')}.log",
        headers={"x-api-key": env["MLNB_API_KEY"]} if "MLNB_API_KEY" in env else None,
    )
    server.wait_ready()
    try:
        started = time.perf_counter()
        base = server.url.rsplit("/", 1)[0]
        result = schemathesis_run(
            base,
            project / "bench" / label.replace(" ", "-"),
            examples=EXAMPLES,
            api_key=env.get("MLNB_API_KEY"),
        )
        result["elapsed_s"] = time.perf_counter() - started
        return result
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)


def run() -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with temp_project("contract") as project:
            service = _prepare(project)
            (project / "bench").mkdir()
            runs = {
                "with a key": _one("contract", service, project, {"MLNB_API_KEY": API_KEY}),
            }
    finally:
        _stop_all()
    rows = []
    notes = []
    for label, result in runs.items():
        cases = result["test_cases"]
        failures = len(result["failures"]) + len(result["errors"])
        rows.append(
            row(
                f"schemathesis --checks all, {EXAMPLES} examples/operation, {label}",
                f"{failures} failures, {result['operations']['tested']} operations, "
                f"{cases['generated']:,} cases",
                "-",
                fmt_time(result["elapsed_s"]),
                "0 failures",
                failures == 0 and result["exit_code"] == 0,
            )
        )
        if failures or result["exit_code"]:
            notes.append(f"schemathesis ({label}):\n{result['output'][-3000:]}")
    return {"rows": rows, "notes": notes}


if __name__ == "__main__":
    module_main(run, {})

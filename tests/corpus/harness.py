"""One corpus notebook taken through what a user does with it, each step recorded.

:func:`run_case` does, in a fresh project of its own (a folder with ``.mlnb/``):

1. ``papermill NB.ipynb out.ipynb -p ...`` (the plain CLI, as from cron);
2. reads back what MLflow holds: every run of every store the notebook could have written
   to, and the versions of the registered model;
3. ``mlnb export NB.ipynb -o service`` (the CLI, in the project);
4. copies the service folder out of the project, moves the project itself away (as in a
   container image, nothing of it is there), runs ``mlnb serve COPY`` on 127.0.0.1 and
   sends it the exported example and a request with a wrong type.

A failing step is recorded, never raised, and the later steps still run where they can,
so one run tells which steps fail and why. The tests in ``test_corpus.py`` judge the
record; :func:`report` puts it in a table.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlnb._net import PORT_RACE_ATTEMPTS, lost_port_race
from tests.conftest import _ENV_KEYS, _MLNB_SET_KEYS
from tests.corpus.cases import Case
from tests.servers import free_port

__all__ = ["Outcome", "RunRecord", "Step", "bad_request", "report", "run_case", "same"]

PAPERMILL = str(Path(sys.executable).with_name("papermill"))
STEP_TIMEOUT = 300.0  # seconds for one papermill run or one export (generous: a busy machine)
CELL_TIMEOUT = 150.0  # seconds for one cell (papermill --execution-timeout)
SETTLE_TIMEOUT = 45.0  # seconds for the last writes to land after papermill exits
READY_TIMEOUT = 120.0
_PORTS_LOCK = threading.Lock()
_PORTS_USED: set[int] = set()


@dataclass
class Step:
    ok: bool
    error: str = ""  # one line: what went wrong
    detail: str = ""  # more of it, for the assertion message
    seconds: float = 0.0


@dataclass
class RunRecord:
    store: str  # tracking URI it was read from
    run_id: str
    experiment: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass
class Outcome:
    case: Case
    project: Path
    papermill: Step
    notebook_predictions: Any = None  # the last cell's `predict(example)`, parsed
    runs: list[RunRecord] = field(default_factory=list)
    versions: list[dict[str, str]] = field(default_factory=list)  # of case.model
    stores: list[str] = field(default_factory=list)
    export: Step = field(default_factory=lambda: Step(False, "not attempted"))
    service: Step = field(default_factory=lambda: Step(False, "not attempted"))
    example_status: int | None = None
    example_answer: Any = None
    bad_body: Any = None
    bad_field: str | None = None
    bad_status: int | None = None
    bad_answer: Any = None

    @property
    def store(self) -> str:
        """The tracking URI the notebook's run belongs in."""
        return self.stores[-1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the tests' or mlnb's own settings."""
    env = {k: v for k, v in os.environ.items() if k not in (*_ENV_KEYS, *_MLNB_SET_KEYS)}
    env.pop("MLNB_API_KEY", None)
    env.update(extra)
    return env


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _last_error_line(text: str) -> str:
    """The line of a traceback or CLI output that says what failed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("error:", "mlnb: error", "mlnb:")) or (
            ":" in line and line.split(":")[0].endswith(("Error", "Exception"))
        ):
            return line[:300]
    return lines[-1][:300] if lines else ""


def _project(base: Path, case: Case, template_store: Path) -> Path:
    import sqlite3

    root = base / case.notebook / "project"
    (root / ".mlnb").mkdir(parents=True)
    db = root / ".mlnb" / "mlflow.db"
    shutil.copy(template_store, db)  # an empty store, migrated once for the whole corpus
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((root / ".mlnb" / "artifacts" / "0").as_uri(),),
        )
    shutil.copy(case.path, root / case.path.name)
    return root


def _run(
    args: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str] | None:
    """``args`` in a process group of its own (papermill's kernel, the export's service
    included); the whole group is killed if it outlasts STEP_TIMEOUT (then None)."""
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop(process)
        process.communicate()
        return None
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _papermill(case: Case, project: Path) -> Step:
    args = [PAPERMILL, case.path.name, "out.ipynb", "--log-level", "WARNING"]
    args += ["--execution-timeout", str(int(CELL_TIMEOUT))]  # a hung cell fails, naming itself
    for name, value in case.inject.items():
        args += ["-p", name, str(value)]
    if case.yaml:
        args += ["-y", json.dumps(case.yaml)]
    started = time.monotonic()
    for _ in range(PORT_RACE_ATTEMPTS):
        done = _run(args, project, clean_env())
        # The corpus starts several kernels at once, and a kernel can lose one of the ports
        # papermill picked for it to another process before it binds them (jupyter_client
        # issue 154): it dies before running anything, so nothing of mlnb ran and papermill
        # is simply run again, as a user would. Any other failure is reported.
        if done is None or not _lost_its_port(done.stderr):
            break
    seconds = time.monotonic() - started
    if done is None:
        return Step(False, f"papermill did not finish in {STEP_TIMEOUT:.0f} s", "", seconds)
    if done.returncode == 0:
        return Step(True, seconds=seconds)
    if "CellTimeoutError" in done.stderr:
        error = _timed_out_cell(project / "out.ipynb")
    else:
        error = _notebook_error(project / "out.ipynb") or _last_error_line(done.stderr)
    return Step(False, error, _tail(done.stderr, 40), seconds)


def _lost_its_port(stderr: str) -> bool:
    return "Kernel died before replying to kernel_info" in stderr and lost_port_race(stderr)


def _notebook_error(executed: Path) -> str:
    """``In [N]: Ename: evalue`` of the executed notebook's failing cell (papermill marks it);
    a magic's ``UsageError`` is only in the cell's stderr."""
    import nbformat

    if not executed.is_file():
        return ""
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.metadata.get("papermill", {}).get("exception"):
            continue
        where = f"In [{cell.get('execution_count')}]"
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{where}: {output.get('ename')}: {_first_line(str(output.get('evalue')))}"
        stderr = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr")
        return f"{where}: {_last_error_line(stderr)}" if stderr.strip() else where
    return ""


def _timed_out_cell(executed: Path) -> str:
    """The cell papermill's --execution-timeout stopped: the last one that started."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    started = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    cell = started[-1]
    return (
        f"In [{cell.execution_count}]: CellTimeoutError: the cell did not finish in "
        f"{CELL_TIMEOUT:.0f} s (it starts {_first_line(cell.source)!r})"
    )


def _notebook_predictions(executed: Path) -> Any:
    """What the notebook's last cell, ``predict(example)``, showed (None if it did not run)."""
    import nbformat

    if not executed.is_file():
        return None
    nb = nbformat.read(executed, as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    for output in last.get("outputs", []):
        if output.get("output_type") == "execute_result":
            return ast.literal_eval(output["data"]["text/plain"])
    return None


def _stores(case: Case, project: Path) -> list[str]:
    """The project's embedded store, then the notebook's own store if it sets one."""
    stores = [f"sqlite:///{project / '.mlnb' / 'mlflow.db'}"]
    if case.tracking_uri is not None:
        relative = case.tracking_uri.removeprefix("sqlite:///")
        stores.append(f"sqlite:///{project / relative}")
    return stores


def _read_record(outcome: Outcome) -> None:
    """What MLflow holds once the notebook's writes have landed: mlnb may send the last of
    them from a background process after the kernel exited, so poll (generously) until
    every run has ended, then read."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        outcome.runs, outcome.versions = _read_stores(outcome)
        settled = outcome.runs and all(r.status != "RUNNING" for r in outcome.runs)
        if settled or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def _read_stores(outcome: Outcome) -> tuple[list[RunRecord], list[dict[str, str]]]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    runs: list[RunRecord] = []
    versions: list[dict[str, str]] = []
    for uri in outcome.stores:
        if not Path(uri.removeprefix("sqlite:///")).is_file():
            continue  # nothing wrote there; reading would create a store
        client = MlflowClient(uri, registry_uri=uri)
        experiments = {
            e.experiment_id: e.name for e in client.search_experiments(view_type=ViewType.ALL)
        }
        for run in client.search_runs(list(experiments), run_view_type=ViewType.ALL):
            discarded = (
                run.info.lifecycle_stage == "deleted"
                and run.data.tags.get("mlnb.discarded") == "true"
                and run.info.status != "RUNNING"
            )
            if discarded:
                # mlnb's own automatic run, given up when the notebook moved to another store
                # or experiment: ended and tagged as such. Any other deleted run counts.
                continue
            runs.append(
                RunRecord(
                    store=uri,
                    run_id=run.info.run_id,
                    experiment=experiments[run.info.experiment_id],
                    status=run.info.status,
                    params=dict(run.data.params),
                    metrics=dict(run.data.metrics),
                    tags=dict(run.data.tags),
                )
            )
        if uri == outcome.store:
            versions = [
                {"version": str(v.version), "run_id": v.run_id or ""}
                for v in client.search_model_versions(f"name='{outcome.case.model}'")
            ]
    return runs, versions


def _export(case: Case, project: Path) -> Step:
    env = clean_env()
    if case.tracking_uri is not None:  # as its user would: point the shell at that store
        env["MLFLOW_TRACKING_URI"] = case.tracking_uri
    started = time.monotonic()
    args = [sys.executable, "-m", "mlnb", "export", case.path.name, "-o", "service"]
    if case.allow_pickle:
        args.append("--allow-pickle")
    done = _run(args, project, env)
    seconds = time.monotonic() - started
    if done is None:
        return Step(False, f"mlnb export did not finish in {STEP_TIMEOUT:.0f} s", "", seconds)
    if done.returncode != 0:
        error = _first_line(done.stderr) or _last_error_line(done.stdout)
        return Step(False, error, _tail(done.stderr, 40), seconds)
    if not (project / "service" / "mlnb-service.json").is_file():
        return Step(False, "mlnb export exited 0 but wrote no service folder", done.stdout, seconds)
    return Step(True, seconds=seconds)


def _port() -> int:
    with _PORTS_LOCK:
        while True:
            port = free_port()
            if port not in _PORTS_USED:
                _PORTS_USED.add(port)
                return port


def bad_request(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The example's first record with one field of the wrong type, and that field."""
    record = dict(body["records"][0])
    for name, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            record[name] = "not a number"
            return {"records": [record]}, name
    for name, value in record.items():
        if isinstance(value, str):
            record[name] = {"not": "text"}
            return {"records": [record]}, name
    raise AssertionError(f"no field to spoil in {record}")


@contextlib.contextmanager
def _moved_away(project: Path) -> Any:
    """The project is not where it was while the copied service runs."""
    away = project.with_name(project.name + "-moved-away")
    project.rename(away)
    try:
        yield
    finally:
        away.rename(project)


def _serve_copy(outcome: Outcome, base: Path) -> None:
    elsewhere = base / outcome.case.notebook / "elsewhere"
    copy = elsewhere / "service"
    shutil.copytree(outcome.project / "service", copy)
    log_path = elsewhere / "serve.log"
    port = _port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with _moved_away(outcome.project), log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "serve", str(copy), "--port", str(port)],
            cwd=elsewhere,
            env=clean_env(MLNB_FOLLOW="off"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if not _wait_ready(process, url):
                text = log_path.read_text(errors="replace")
                state = "exited" if process.poll() is not None else "did not get ready"
                outcome.service = Step(
                    False, f"mlnb serve {state}: {_last_error_line(text)}", _tail(text, 40)
                )
                return
            body = json.loads((copy / "example.json").read_text())
            with httpx.Client(base_url=url, timeout=60) as client:
                answer = client.post("/predict", json=body)
                outcome.example_status = answer.status_code
                outcome.example_answer = _json(answer)
                outcome.bad_body, outcome.bad_field = bad_request(body)
                refused = client.post("/predict", json=outcome.bad_body)
                outcome.bad_status = refused.status_code
                outcome.bad_answer = _json(refused)
            text = log_path.read_text(errors="replace")
            outcome.service = Step(True, "", _tail(text, 20), time.monotonic() - started)
        finally:
            _stop(process)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_case(case: Case, base: Path, template_store: Path) -> Outcome:
    """Every step for ``case`` in a project of its own under ``base``."""
    project = _project(base, case, template_store)
    outcome = Outcome(case, project, _papermill(case, project))
    outcome.stores = _stores(case, project)
    try:
        outcome.notebook_predictions = _notebook_predictions(project / "out.ipynb")
    except (ValueError, SyntaxError, KeyError) as exc:
        outcome.notebook_predictions = f"unreadable: {exc}"
    _read_record(outcome)
    outcome.export = _export(case, project)
    if outcome.export.ok:
        try:
            _serve_copy(outcome, base)
        except Exception as exc:
            outcome.service = Step(False, f"{type(exc).__name__}: {exc}")
    else:
        outcome.service = Step(False, "no service: mlnb export failed")
    return outcome


def same(a: Any, b: Any) -> bool:
    """Equal predictions: exact for labels, to 1e-9 (relative) for floats."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def report(outcomes: list[Outcome], failures: dict[str, list[tuple[str, str]]]) -> str:
    """A Markdown table: each notebook, the checks that failed (first line) and timings."""
    lines = [
        "| notebook | failing checks (first line) | papermill s | export s | serve s |",
        "|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        failed = failures.get(outcome.case.notebook, [])
        text = "<br>".join(f"**{check}**: {line}" for check, line in failed) or "all pass"
        lines.append(
            f"| {outcome.case.notebook} | {text.replace('|', '/')} | "
            f"{outcome.papermill.seconds:.1f} | {outcome.export.seconds:.1f} | "
            f"{outcome.service.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"

"""Proving an export: the service answers the example in a fresh process, and (``--parity``)
answers exactly as the notebook's own ``predict(example)``.

The service is started from a copy of its folder in a temporary folder outside the project,
in that folder and without ``MLNB_PROJECT_ROOT``: it finds nothing of the project but what was
pinned into it, as it will once copied elsewhere or built into its Docker image."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlnb._net import PORT_RACE_ATTEMPTS, free_port, lost_port_race
from mlnb.exceptions import NotebookError

__all__ = ["SERVE_MODULES", "ParityRun", "Verifier", "log_cause", "service_env"]


def _post(url: str, body: bytes, timeout: float = 60) -> tuple[int, Any]:
    request = urllib.request.Request(url, body, {"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


_MISSING = ("FileNotFoundError", "No such file", "ModuleNotFoundError", "no versions of")


def _hint(metadata: dict[str, Any]) -> str:
    pinned = [f["source"] for f in metadata.get("files") or []]
    pinned += [v["ref"] for v in metadata.get("versions") or []]
    listing = ", ".join(pinned[:8]) + (" ..." if len(pinned) > 8 else "") if pinned else "none"
    return (
        "The check runs the service from a copy of its folder outside the project, where it "
        f"has only what was pinned (files and versions: {listing}). A file it cannot find was "
        "read where the export check does not see it (by a C library through a path built at "
        "run time, in a subprocess, or from MLflow's store directly): name it by a literal "
        "path relative to the notebook (e.g. pd.read_parquet('data/x.parquet')), or version "
        "it and read it with mlnb.load_version(NAME); load models with "
        "mlnb.load_model('models:/NAME/VERSION')."
    )


_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
_CELL_MARK = re.compile(r"^# %% \[cell (\d+)\]")


def log_cause(log: str, code: Path) -> tuple[str | None, int | None]:
    """The exception a service log ends with (``NameError: name 'x' is not defined``, at
    ``line L of cell N`` when its traceback passes through the exported code ``code``), and
    that cell's position from 0; ``(None, None)`` when the log shows no exception."""
    lines = log.splitlines()
    raised = [m for m in (_RAISED.match(line) for line in lines) if m]
    if not raised:
        return None, None
    cause = raised[-1].group(0).strip()[:300]
    places = re.findall(rf'File "{re.escape(str(code))}", line (\d+)', log)
    if not places:
        places = re.findall(r'File "[^"]*service\.py", line (\d+)', log)
    if not places or not code.is_file():
        return cause, None
    number = int(places[-1])
    source = code.read_text(encoding="utf-8", errors="replace").splitlines()[:number]
    marks = [(i, m) for i, m in ((i, _CELL_MARK.match(t)) for i, t in enumerate(source)) if m]
    if not marks:
        return cause, None
    at, mark = marks[-1]
    cell = int(mark.group(1))
    return f"{cause}, raised at line {number - at - 1} of cell {cell}", cell - 1


def service_env() -> dict[str, str]:
    """The environment of the checked service: this one without what would point it at the
    project or change what it answers with (the pinned model, no audit log in the folder)."""
    env = {**os.environ, "MLNB_LOG_LEVEL": "WARNING"}
    for key in ("MLNB_API_KEY", "MLNB_CHALLENGER", "MLNB_PROJECT_ROOT", "MLNB_AUDIT_DIR"):
        env.pop(key, None)
    env.update(MLNB_AUDIT="off", MLNB_FOLLOW="off", MLNB_DRIFT="off", MLNB_RESOURCES="off")
    return env


#: the fresh process of the check, started before the folder exists: it imports what it is
#: told (``import MODULE`` lines: modules the service imports at start-up anyway), then on
#: ``serve FOLDER PORT`` runs exactly ``python -m mlnb serve FOLDER --port PORT``
_WAITING_SERVE = """
import importlib, runpy, sys
while True:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    verb, _, rest = line.rstrip("\\n").partition(" ")
    if verb == "import":
        try:
            importlib.import_module(rest)
        except BaseException:
            pass  # the service's own start reports it
    elif verb == "serve":
        folder, port = rest.rsplit(" ", 1)
        sys.argv = ["mlnb", "serve", folder, "--port", port]
        runpy.run_module("mlnb", run_name="__main__", alter_sys=True)
        sys.exit(0)
"""

#: what ``mlnb serve`` itself imports before it answers (its app, server and frame stack)
SERVE_MODULES = ("mlnb.cli", "mlnb.serve", "fastapi", "uvicorn", "pandas", "mlnb.serve._app")


class Verifier:
    """The check's fresh process, started when the export starts so that its imports
    overlap the export's own work; :meth:`run` hands it the finished folder's copy.

    It is a new interpreter with a cleaned environment, in a temporary folder outside the
    project, and it runs ``python -m mlnb serve`` on the copy: nothing of the exporting
    process is shared with it, only modules the service imports anyway are loaded earlier."""

    def __init__(self) -> None:
        self.place = Path(tempfile.mkdtemp(prefix="mlnb-check-"))
        self.env = service_env()
        self.log_path = self.place / "service.log"
        with self.log_path.open("wb") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, "-c", _WAITING_SERVE],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.place,
                start_new_session=True,
            )
        self._told: set[str] = set()

    def _say(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except OSError:
            pass  # it exited: run() reports it with its log

    def warm(self, modules: Iterable[str]) -> None:
        """Have the process import ``modules`` now (in the order given, each once)."""
        for module in modules:
            if module and module not in self._told and module.replace(".", "").isidentifier():
                self._told.add(module)
                self._say(f"import {module}")

    def run(self, folder: Path, metadata: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Copy ``folder`` next to the process, start the service on it on a free port, send
        the example to every endpoint and return their answers; raise with the service's
        log when anything is off."""
        copy = self.place / "service"
        shutil.copytree(folder, copy, symlinks=True)
        port = free_port()
        self._say(f"serve {copy} {port}")
        _close_stdin(self.process)
        return _run_copy(copy, metadata, timeout, self, f"http://127.0.0.1:{port}")

    def close(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.place, ignore_errors=True)


def _close_stdin(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):  # it exited: its log says why
            process.stdin.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    _close_stdin(process)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _start(
    folder: Path, env: dict[str, str], log_path: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``mlnb serve`` on the copy, on a free port: the process and its base URL."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "serve", str(folder), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder.parent,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}"


def _run_copy(
    folder: Path, metadata: dict[str, Any], timeout: float, verifier: Verifier, base: str
) -> dict[str, Any]:
    log_path, env = verifier.log_path, verifier.env

    def fail(message: str) -> NotebookError:
        text = log_path.read_text(errors="replace")
        tail = text[-2000:]
        missing = any(m in text for m in _MISSING) or any(m in message for m in _MISSING)
        hint = f"\n{_hint(metadata)}" if missing else ""
        cause, cell = log_cause(text, folder / str(metadata.get("code") or "service.py"))
        first = f"{cause}, so {message[0].lower()}{message[1:]}" if cause else message
        return NotebookError(f"{first}{hint}\n--- service log ---\n{tail}", cell=cell)

    try:
        deadline = time.monotonic() + timeout
        starts = 1
        while True:
            process = verifier.process
            if process.poll() is not None:
                said = log_path.read_text(errors="replace")
                if lost_port_race(said) and starts < PORT_RACE_ATTEMPTS:
                    starts += 1  # another process took the port first: a new one
                    verifier.process, base = _start(folder, env, log_path)
                    continue
                raise fail(f"the exported service exited at start-up (code {process.returncode}).")
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise fail(f"the exported service did not become ready in {timeout:.0f} s.")
            time.sleep(0.2)
        answers: dict[str, Any] = {}
        for endpoint in metadata["endpoints"]:
            example = endpoint.get("example")
            if not example:
                continue
            body = (
                {"records": example["records"]}
                if endpoint["kind"] == "dataframe"
                else example["value"]
            )
            status, answer = _post(base + endpoint["path"], json.dumps(body, default=str).encode())
            if status != 200:
                raise fail(f"POST {endpoint['path']} with the example answered {status}: {answer}")
            if endpoint["kind"] == "dataframe":
                ok = (
                    isinstance(answer, dict)
                    and isinstance(answer.get("predictions"), list)
                    and len(answer["predictions"]) == len(example["records"])
                    and answer.get("request_id")
                )
                if not ok:
                    raise fail(f"POST {endpoint['path']} answered a malformed body: {answer}")
            answers[endpoint["path"]] = answer
        return answers
    finally:
        _stop(verifier.process)


_PARITY_CELL = """
import json as _mlnb_json
from mlnb.serve import example_records as _mlnb_records, to_list as _mlnb_to_list
import pandas as _mlnb_pd
_mlnb_frame = example
if not isinstance(example, _mlnb_pd.DataFrame):
    _mlnb_frame = _mlnb_pd.DataFrame(_mlnb_records(example))
with open({path!r}, "w") as _mlnb_fh:
    _mlnb_json.dump(_mlnb_to_list(predict(_mlnb_frame)), _mlnb_fh, default=str)
"""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


#: run by :class:`ParityRun` in a process of its own: the notebook without its mlnb:skip
#: cells, plus the cell above, under papermill; a failure's message goes to the error file
_PARITY_RUN = """
import sys
import nbformat, papermill
notebook, folder, cell, error = sys.argv[1:5]
try:
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if "mlnb:skip" not in c.get("metadata", {}).get("tags", [])]
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    source = folder + "/notebook.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(
        source, folder + "/executed.ipynb", cwd=sys.argv[5], progress_bar=False, log_output=False
    )
except Exception as exc:
    with open(error, "w") as fh:
        fh.write(str(exc))
    sys.exit(1)
"""


class ParityRun:
    """``--parity``: the notebook (minus mlnb:skip cells) run under papermill with its own
    ``predict(example)`` saved, in a process started with the export so that it overlaps
    the export's work; :meth:`compare` requires the service's predictions to equal it."""

    def __init__(self, notebook: Path) -> None:
        self.notebook = notebook
        self.place = Path(tempfile.mkdtemp(prefix="mlnb-parity-"))
        self.result_path = self.place / "notebook-predictions.json"
        self.error_path = self.place / "error.txt"
        cell = _PARITY_CELL.format(path=str(self.result_path))
        with (self.place / "papermill.log").open("wb") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _PARITY_RUN,
                    str(notebook),
                    str(self.place),
                    cell,
                    str(self.error_path),
                    str(notebook.parent),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def compare(self, service_answers: dict[str, Any]) -> list[Any]:
        answer = service_answers.get("/predict")
        if answer is None:
            raise NotebookError("--parity needs a `predict` endpoint that takes a DataFrame.")
        code = self.process.wait()
        if code != 0 or not self.result_path.is_file():
            said = self.error_path.read_text(errors="replace") if self.error_path.exists() else ""
            if not said:
                log = (self.place / "papermill.log").read_text(errors="replace")
                said = f"exit code {code}: {log[-2000:]}"
            raise NotebookError(f"--parity: the notebook failed under papermill: {said}")
        expected = json.loads(self.result_path.read_text())
        if not _same(expected, answer["predictions"]):
            raise NotebookError(
                "--parity: the service's predictions differ from the notebook's own "
                f"predict(example): service {answer['predictions'][:5]}, notebook "
                f"{expected[:5]}. Preprocessing used by predict must live in cells tagged "
                "mlnb:export."
            )
        return list(expected)

    def close(self) -> None:
        if self.process.poll() is None:  # the export failed first: its kernel goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.place, ignore_errors=True)

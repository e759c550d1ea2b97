"""Proving an export: the service answers the example in a fresh process, and (``--parity``)
answers exactly as the notebook's own ``predict(example)``.

The service is started from a copy of its folder in a temporary folder outside the project,
in that folder and without ``MLNB_PROJECT_ROOT``: it finds nothing of the project but what was
pinned into it, as it will once copied elsewhere or built into its Docker image."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlnb.exceptions import NotebookError

__all__ = ["check_parity", "free_port", "run_example"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: bytes, timeout: float = 60) -> tuple[int, Any]:
    request = urllib.request.Request(url, body, {"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def run_example(folder: Path, metadata: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """Start ``mlnb serve`` on a copy of ``folder`` outside the project, on a free port, send
    the example to every endpoint and return their answers; raise with the service's log
    when anything is off."""
    with tempfile.TemporaryDirectory(prefix="mlnb-check-") as place:
        copy = Path(place) / "service"
        shutil.copytree(folder, copy, symlinks=True)
        return _run_copy(copy, metadata, timeout)


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


def _run_copy(folder: Path, metadata: dict[str, Any], timeout: float) -> dict[str, Any]:
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="mlnb-verify-", suffix=".log")[1])
    env = {**os.environ, "MLNB_LOG_LEVEL": "WARNING"}
    for key in ("MLNB_API_KEY", "MLNB_CHALLENGER", "MLNB_PROJECT_ROOT", "MLNB_AUDIT_DIR"):
        env.pop(key, None)
    # the check answers with the pinned model and leaves no audit log in the folder
    env.update(MLNB_AUDIT="off", MLNB_FOLLOW="off", MLNB_DRIFT="off", MLNB_RESOURCES="off")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "serve", str(folder), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder.parent,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def fail(message: str) -> NotebookError:
        text = log_path.read_text(errors="replace")
        tail = text[-2000:]
        missing = any(m in text for m in _MISSING) or any(m in message for m in _MISSING)
        hint = f"\n{_hint(metadata)}" if missing else ""
        return NotebookError(f"{message}{hint}\n--- service log ---\n{tail}")

    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
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
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log_path.unlink(missing_ok=True)


_PARITY_CELL = """
import json as _mlnb_json
from mlnb.serve._schemas import example_records as _mlnb_records
from mlnb.serve._batching import to_list as _mlnb_to_list
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


def check_parity(notebook: Path, service_answers: dict[str, Any]) -> list[Any]:
    """Run the notebook (minus mlnb:skip cells) with papermill, compute its own
    ``predict(example)`` and require the service's predictions to equal it."""
    import nbformat
    import papermill

    answer = service_answers.get("/predict")
    if answer is None:
        raise NotebookError("--parity needs a `predict` endpoint that takes a DataFrame.")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if "mlnb:skip" not in c.get("metadata", {}).get("tags", [])]
    with tempfile.TemporaryDirectory(prefix="mlnb-parity-") as tmp:
        result_path = Path(tmp) / "notebook-predictions.json"
        nb.cells.append(nbformat.v4.new_code_cell(_PARITY_CELL.format(path=str(result_path))))
        source = Path(tmp) / notebook.name
        nbformat.write(nb, source)
        try:
            papermill.execute_notebook(
                str(source),
                str(Path(tmp) / "executed.ipynb"),
                cwd=str(notebook.parent),
                progress_bar=False,
                log_output=False,
            )
        except Exception as exc:
            raise NotebookError(f"--parity: the notebook failed under papermill: {exc}") from exc
        expected = json.loads(result_path.read_text())
    if not _same(expected, answer["predictions"]):
        raise NotebookError(
            "--parity: the service's predictions differ from the notebook's own "
            f"predict(example): service {answer['predictions'][:5]}, notebook {expected[:5]}. "
            "Preprocessing used by predict must live in cells tagged mlnb:export."
        )
    return list(expected)

"""What the REST handlers do, as plain functions over the library (run in worker threads).

Paths come from the browser relative to the server's root folder, as in Jupyter's contents
API; every one of them, and every path a pipeline spec names, goes through
:class:`~mlnb.labserver._paths.ServerRoot` before a file is touched (403 outside the root).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb._text import first_line
from mlnb.exceptions import MlnbError, OutsideReadError, TrackingUnavailableError
from mlnb.labserver._errors import LabError
from mlnb.labserver._models import (
    EndpointInfo,
    ErrorResponse,
    ExportRequest,
    ExportResponse,
    ModelInfo,
    PipelineJob,
    PipelineRequest,
    RunsResponse,
    RunSummary,
    StepState,
    VersionRequest,
    VersionResponse,
)
from mlnb.labserver._paths import OUTSIDE_HINT, ServerRoot

if TYPE_CHECKING:
    from mlnb.pipeline import Pipeline

__all__ = ["LabError", "Pipelines", "Services", "export", "list_runs", "version"]

#: metrics shown per run in the sidebar (the rest are one click away in the MLflow UI)
MAX_RUNS = 20
PIPELINE_NAMES = ("pipeline.yaml", "pipeline.yml")


def read_notebook_json(path: Path, shown: str) -> dict[str, Any]:
    """The notebook's JSON, or a 400 that says where the JSON is broken."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise LabError(
            400, f"{shown} is not a text file", "a notebook is a UTF-8 JSON file (.ipynb)"
        ) from None
    except json.JSONDecodeError as exc:
        raise LabError(
            400,
            f"{shown} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            "open it in a text editor and repair it, or restore it from version control",
        ) from None
    if not isinstance(data, dict) or "cells" not in data:
        raise LabError(400, f"{shown} is not a notebook (no cells)", "pass a .ipynb notebook")
    return data


# -- runs ----------------------------------------------------------------------------------
def ui_base(tracking_uri: str, configured: str) -> tuple[str, str]:
    """Base URL of the MLflow UI for these runs, and how to get it running."""
    if configured:
        return configured.rstrip("/"), f"the MLflow UI at {configured}"
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/"), "the MLflow server these runs go to"
    return "http://127.0.0.1:5000", "run `mlnb ui` in the project to open the MLflow UI"


def list_runs(root: ServerRoot, path: str, configured_ui: str = "") -> RunsResponse:
    from mlnb.config import get_settings
    from mlnb.tracking import _client

    notebook = root.request_path(path, what="notebook", suffix=".ipynb")
    settings = get_settings(notebook.parent)
    base, hint = ui_base(settings.tracking_uri, configured_ui)
    client = _client.get_client(settings)
    quoted = str(notebook).replace("\\", "\\\\").replace("'", "\\'")
    try:
        ids = [e.experiment_id for e in client.search_experiments()]
        found = client.search_runs(
            ids,
            filter_string=f"tags.`mlnb.notebook` = '{quoted}'",
            order_by=["attributes.start_time DESC"],
            max_results=MAX_RUNS,
        )
    except MlnbError:
        raise
    except Exception as exc:
        raise _client.describe_error(exc, settings.tracking_uri, "list the runs") from exc
    runs = [
        RunSummary(
            run_id=r.info.run_id,
            name=r.info.run_name or r.info.run_id,
            status=r.info.status,
            experiment_id=str(r.info.experiment_id),
            start_time=r.info.start_time,
            end_time=r.info.end_time,
            metrics={k: float(v) for k, v in sorted(r.data.metrics.items())},
            params=dict(sorted(r.data.params.items())),
            url=f"{base}/#/experiments/{r.info.experiment_id}/runs/{r.info.run_id}",
        )
        for r in found
    ]
    return RunsResponse(
        notebook=root.relative(notebook),
        tracking_uri=settings.tracking_uri,
        ui_url=base,
        ui_hint=hint,
        active=any(r.status == "RUNNING" for r in runs),
        runs=runs,
    )


# -- export --------------------------------------------------------------------------------
def export(root: ServerRoot, request: ExportRequest, services: Services) -> ExportResponse:
    from mlnb.export import export_notebook

    notebook = root.request_path(request.path, what="notebook", suffix=".ipynb")
    read_notebook_json(notebook, request.path)
    if request.output:
        output = root.request_path(
            request.output, field="output", what="output folder", must_exist=False
        )
    else:
        output = root.inside(
            root.root / "build" / "services" / notebook.stem, field="output (the default)"
        )
    if output == root.root:
        raise LabError(
            403,
            f"output: {request.output!r} is the server root itself",
            "choose a folder under the server root, e.g. build/services/NAME",
        )
    try:  # confined to the root: a file the cells read outside it is never copied in
        result = export_notebook(
            notebook,
            output,
            force=request.force,
            confine=root.root,
            allow_pickle=request.allow_pickle,
        )
    except TrackingUnavailableError:
        raise
    except MlnbError as exc:
        if isinstance(exc, OutsideReadError) and exc.confined:
            raise _outside_root(root, request.path, exc) from None
        message = first_line(exc, limit=2000)
        if output.exists() and "already exists" in message:
            raise LabError(
                409, message, "export again with force, or choose another folder"
            ) from None
        raise LabError(
            409,
            f"the export check failed: {message}",
            "fix the notebook's tagged cells and export again; nothing was written",
        ) from exc
    meta = result.metadata
    url = services.start(result.folder) if request.serve else None
    return ExportResponse(
        folder=root.relative(result.folder),
        endpoints=[
            EndpointInfo(path=e["path"], function=e["function"], kind=e["kind"])
            for e in meta.get("endpoints", [])
        ],
        models=[
            ModelInfo(resolved=str(m["resolved"]), path=str(m["path"]), hash=str(m["hash"]))
            for m in meta.get("models", [])
        ],
        verified=sorted(result.answers),
        serve_command=f"mlnb serve {root.relative(result.folder)}",
        service_url=url,
    )


def _outside_root(root: ServerRoot, path: str, exc: OutsideReadError) -> LabError:
    more = f" and {len(exc.reads) - 5} more" if len(exc.reads) > 5 else ""
    return LabError(
        403,
        f"the exported cells of {path!r} read {len(exc.reads)} file(s) outside the server "
        f"root {root.root}: {'; '.join(exc.reads[:5])}{more}; nothing was copied",
        OUTSIDE_HINT,
    )


class Services:
    """Services started from the UI (``mlnb serve``), one per folder, stopped with the server."""

    def __init__(self) -> None:
        self._procs: dict[Path, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, folder: Path, timeout: float = 90.0) -> str:
        import urllib.request

        from mlnb.export._verify import free_port

        folder = folder.resolve()
        self.stop(folder)
        port = free_port()
        log = open(folder.parent / f".{folder.name}.serve.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "mlnb", "serve", str(folder)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with self._lock:
            self._procs[folder] = proc
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(
                    409,
                    f"the service exited at start-up (status {proc.returncode})",
                    f"see {log.name}, or run `mlnb serve {folder}` in a terminal",
                )
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    return url
            except OSError:
                time.sleep(0.2)
        self.stop(folder)
        raise LabError(409, "the service did not answer /healthz in time", f"see {log.name}")

    def stop(self, folder: Path | None = None) -> None:
        with self._lock:
            keys = list(self._procs) if folder is None else [folder.resolve()]
            procs = [self._procs.pop(k) for k in keys if k in self._procs]
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- versions ------------------------------------------------------------------------------
def version(root: ServerRoot, request: VersionRequest) -> VersionResponse:
    from mlnb.versioning import version as version_path

    target = root.request_path(request.path, what="file or folder")
    root.tree(target, field="path", written=request.path)  # its files are copied to the store
    name = request.name or root.relative(target)
    record = version_path(str(target), name, run=False)
    return VersionResponse(
        name=record.name, number=record.number, hash=record.hash, kind=record.kind, size=record.size
    )


# -- pipelines -----------------------------------------------------------------------------
def find_pipeline(root: ServerRoot, path: str) -> Path:
    target = root.request_path(path, what="pipeline or notebook")
    if target.suffix in {".yaml", ".yml"}:
        return target
    folder = target if target.is_dir() else target.parent
    while True:
        for name in PIPELINE_NAMES:
            if (folder / name).is_file():
                return root.inside(folder / name, field="pipeline file")
        if folder == root.root or not folder.is_relative_to(root.root):
            break
        folder = folder.parent
    raise LabError(
        404,
        f"no pipeline.yaml next to {path!r} or in a folder above it",
        "write a pipeline.yaml that lists the notebooks as steps (see the mlnb README)",
    )


@dataclass
class _Job:
    job_id: str
    pipeline: str
    status: str = "running"
    run_id: str | None = None
    steps: list[StepState] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    error: ErrorResponse | None = None

    def model(self) -> PipelineJob:
        return PipelineJob(
            job_id=self.job_id,
            pipeline=self.pipeline,
            status=self.status,
            run_id=self.run_id,
            steps=list(self.steps),
            log=list(self.log[-200:]),
            error=self.error,
        )


class Pipelines:
    """Pipeline runs started from the UI, each in a background thread; one at a time per
    pipeline file (a second start answers 409)."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def start(self, root: ServerRoot, request: PipelineRequest) -> PipelineJob:
        from mlnb.pipeline import load_pipeline

        spec = find_pipeline(root, request.path)
        # a bad spec is refused now, with its line, not in the thread; the thread runs the
        # pipeline checked here (every path it names under the root), not the file again
        pipeline = load_pipeline(spec, confine=root.pipeline)  # before a notebook is looked for
        if request.workers < 1:
            raise LabError(400, "workers must be at least 1", "pass workers: 1 or more")
        shown = root.relative(spec)
        with self._lock:
            if any(j.pipeline == shown and j.status == "running" for j in self._jobs.values()):
                raise LabError(
                    409,
                    f"pipeline {shown} is already running",
                    "wait for it to finish (the mlnb sidebar shows its progress)",
                )
            job = _Job(job_id=uuid.uuid4().hex[:12], pipeline=shown)
            self._jobs[job.job_id] = job
        thread = threading.Thread(
            target=self._run, args=(job, pipeline, request), name=f"mlnb-pipeline-{job.job_id}"
        )
        thread.daemon = True
        thread.start()
        return job.model()

    def get(self, job_id: str) -> PipelineJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise LabError(
                404, f"no pipeline run {job_id!r}", "start one with Run pipeline; ids reset"
            )
        return job.model()

    def _run(self, job: _Job, pipeline: Pipeline, request: PipelineRequest) -> None:
        from mlnb.pipeline import PipelineFailed, run_pipeline

        def states(result: Any) -> list[StepState]:
            return [
                StepState(name=s.name, status=s.status, run_id=s.run_id, error=s.error)
                for s in result.steps.values()
            ]

        try:
            result = run_pipeline(
                pipeline, force=request.force, workers=request.workers, report=job.log.append
            )
            job.steps, job.run_id = states(result), result.run_id
            job.status = "succeeded" if result.ok else "failed"
        except PipelineFailed as exc:
            job.steps, job.run_id = states(exc.result), exc.result.run_id
            job.error = ErrorResponse(error=first_line(exc), hint="see the step's notebook")
            job.status = "failed"
        except MlnbError as exc:
            job.error = ErrorResponse(error=first_line(exc), hint="fix the pipeline and rerun")
            job.status = "failed"
        except Exception as exc:  # the UI shows it; the server log has the traceback
            import logging

            logging.getLogger("mlnb.labserver").exception("pipeline %s failed", pipeline.source)
            job.error = ErrorResponse(
                error=f"{type(exc).__name__}: {first_line(exc)}",
                hint="see the Jupyter server log for details",
            )
            job.status = "failed"

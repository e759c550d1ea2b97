"""What the REST handlers do, as plain functions over the library (run in worker threads).

Paths come from the browser relative to the server's root folder, as in Jupyter's contents
API; every one of them, and every path a pipeline spec names, goes through
:class:`~mlnb.labserver._paths.ServerRoot` before a file is touched (403 outside the root).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlnb._text import first_line
from mlnb.exceptions import MlnbError, OutsideReadError, TrackingUnavailableError
from mlnb.labserver._errors import LabError
from mlnb.labserver._mlflow_ui import MlflowUi
from mlnb.labserver._models import (
    CompareResponse,
    EndpointInfo,
    ErrorResponse,
    ExportRequest,
    ExportResponse,
    ModelInfo,
    PipelineJob,
    PipelineRequest,
    RunsResponse,
    RunSummary,
    StepProgress,
    StepState,
    UiRequest,
    UiResponse,
    VersionRequest,
    VersionResponse,
)
from mlnb.labserver._paths import OUTSIDE_HINT, ServerRoot

if TYPE_CHECKING:
    from mlnb.labserver._pipelines import RunLinks
    from mlnb.pipeline import Pipeline, StepEvent

__all__ = [
    "LabError",
    "Pipelines",
    "Services",
    "compare",
    "export",
    "list_runs",
    "start_ui",
    "version",
]

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
def ui_base(tracking_uri: str, configured: str, managed: str | None = None) -> tuple[str, str]:
    """Base URL of the MLflow UI for these runs, and how to get it running."""
    if configured:
        return configured.rstrip("/"), f"the MLflow UI at {configured}"
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/"), "the MLflow server these runs go to"
    if managed:
        return managed, f"the MLflow UI started by JupyterLab at {managed}"
    return "http://127.0.0.1:5000", "the MLflow UI button starts it, or run `mlnb ui`"


def list_runs(
    root: ServerRoot, path: str, configured_ui: str = "", ui: MlflowUi | None = None
) -> RunsResponse:
    from mlnb.config import get_settings
    from mlnb.tracking import describe_error, get_client

    notebook = root.request_path(path, what="notebook", suffix=".ipynb")
    settings = get_settings(notebook.parent)
    managed = ui.running_url(settings.root) if ui is not None else None
    base, hint = ui_base(settings.tracking_uri, configured_ui, managed)
    client = get_client(settings)
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
        raise describe_error(exc, settings.tracking_uri, "list the runs") from exc
    runs = [_summary(root, settings.home, base, r) for r in found]
    runs = _pending(settings, str(notebook), runs) + runs
    return RunsResponse(
        notebook=root.relative(notebook),
        tracking_uri=settings.tracking_uri,
        ui_url=base,
        ui_hint=hint,
        ui_start=not configured_ui and not settings.is_remote and managed is None,
        idle_timeout=settings.idle_timeout,
        active=any(r.status == "RUNNING" for r in runs),
        runs=runs,
    )


def _pending(settings: Any, notebook: str, listed: list[RunSummary]) -> list[RunSummary]:
    """This notebook's runs started but not yet in the store (MLflow still being imported
    for a kernel's first run, a server that is down): from the journal, shown at once."""
    from mlnb.tracking import unsent_runs

    try:
        found = unsent_runs(settings.journal_dir, settings.tracking_uri)
    except OSError:
        return []
    known = {r.run_id for r in listed}
    return [
        RunSummary(
            run_id=run["run"],
            name=run["run_name"] or "new run",  # MLflow names it when it creates it
            status=run["status"],
            experiment_id=run["experiment_id"],
            start_time=run["start_time"],
            end_time=run["end_time"],
            metrics={k: float(v) for k, v in sorted(run["metrics"].items())},
            params=dict(sorted(run["params"].items())),
            url="",
            step=run["tags"].get("mlnb.step"),
            parent_run_id=None,
            parent_url=None,
            executed_notebook=None,
            pending=True,
        )
        for run in found
        if run["tags"].get("mlnb.notebook") == notebook
        and run["tags"].get("mlnb.discarded") != "true"
        and run["run"] not in known
    ][:MAX_RUNS]


def _summary(root: ServerRoot, home: Path, base: str, r: Any) -> RunSummary:
    tags = r.data.tags
    step = tags.get("mlnb.step")
    parent = tags.get("mlflow.parentRunId")
    experiment = r.info.experiment_id
    return RunSummary(
        run_id=r.info.run_id,
        name=r.info.run_name or r.info.run_id,
        status=r.info.status,
        experiment_id=str(experiment),
        start_time=r.info.start_time,
        end_time=r.info.end_time,
        metrics={k: float(v) for k, v in sorted(r.data.metrics.items())},
        params=dict(sorted(r.data.params.items())),
        url=f"{base}/#/experiments/{experiment}/runs/{r.info.run_id}",
        step=step,
        parent_run_id=parent,
        parent_url=f"{base}/#/experiments/{experiment}/runs/{parent}" if parent else None,
        executed_notebook=executed_notebook(root, home, parent, step) if parent else None,
    )


def executed_notebook(root: ServerRoot, home: Path, parent: str, step: str | None) -> str | None:
    """A pipeline step's executed notebook as a path JupyterLab opens (relative to the root),
    or None when there is none. The runner keeps it in ``.mlnb/runs/<pipeline run>/``, a
    hidden folder the contents API refuses by default: then a copy under
    ``build/pipeline-runs/<pipeline run>/`` is what opens (made once, read-only in spirit)."""
    if not step:
        return None
    kept = home / "runs" / parent / f"{step.replace('/', '_')}.ipynb"
    if not kept.is_file():
        return None
    kept = kept.resolve()
    visible = kept.is_relative_to(root.root) and (root.allow_hidden or not root._hidden(kept))
    if visible:
        return root.relative(kept)
    copy = root.root / "build" / "pipeline-runs" / parent / kept.name
    try:
        if not copy.is_file() or copy.stat().st_mtime < kept.stat().st_mtime:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(kept, copy)
    except OSError:
        return None
    return root.relative(copy)


def compare(root: ServerRoot, run_ids: list[str]) -> CompareResponse:
    """What ``%mlnb compare`` shows for these runs (mlnb.widgets' static view)."""
    from mlnb.widgets import Comparison
    from mlnb.widgets import compare as compare_runs

    ids = [r for r in run_ids if r.strip()]
    if len(ids) < 2:
        raise LabError(
            400,
            f"compare needs at least two runs, got {len(ids)}",
            "tick two or more runs in the mlnb sidebar, then Compare",
        )
    view = compare_runs(ids, static=True)
    assert isinstance(view, Comparison)
    bundle = view._repr_mimebundle_()
    return CompareResponse(
        run_ids=[r.run_id for r in view.runs],
        differing_params=list(view.differing_params),
        html=str(bundle["text/html"]),
    )


def start_ui(root: ServerRoot, request: UiRequest, ui: MlflowUi) -> UiResponse:
    from mlnb.config import get_settings

    notebook = root.request_path(request.path, what="notebook", suffix=".ipynb")
    settings = get_settings(notebook.parent)
    if settings.is_remote:
        return UiResponse(url=settings.tracking_uri.rstrip("/"), started=False, ready=True)
    # the sidebar asks each second while the UI starts: no store query for a start under way
    run_id = None if ui.has_own(settings.root) else _any_run(settings)
    state = ui.ensure(settings.root, run_id)
    return UiResponse(url=state.url, started=state.started, ready=state.ready)


def _any_run(settings: Any) -> str | None:
    """A run of the store (tells a UI of this store from one of another store)."""
    from mlnb.tracking import get_client

    client = get_client(settings)
    try:
        ids = [e.experiment_id for e in client.search_experiments()]
        found = client.search_runs(ids, max_results=1) if ids else []
    except Exception:
        return None
    return str(found[0].info.run_id) if found else None


# -- export --------------------------------------------------------------------------------
def export(
    root: ServerRoot, request: ExportRequest, services: Services, configured_ui: str = ""
) -> ExportResponse:
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
        # the cause (and the cell) first; what it stopped after
        raise LabError(
            409,
            message,
            "nothing was written: the export check failed. Fix the cell and export again",
            cell=getattr(exc, "cell", None),
        ) from exc
    meta = result.metadata
    url, note = services.start(result.folder) if request.serve else (None, None)
    return ExportResponse(
        folder=root.relative(result.folder),
        endpoints=[
            EndpointInfo(path=e["path"], function=e["function"], kind=e["kind"])
            for e in meta.get("endpoints", [])
        ],
        models=model_runs(meta.get("models", []), notebook.parent, configured_ui),
        verified=sorted(result.answers),
        serve_command=f"mlnb serve {root.relative(result.folder)}",
        service_url=url,
        port_note=note,
    )


def model_runs(models: list[dict[str, Any]], where: Path, configured_ui: str) -> list[ModelInfo]:
    """The pinned models, each with the run that logged it: name, params and its page in
    the MLflow UI (left empty when the run is not in this project's store)."""
    from mlnb.config import get_settings
    from mlnb.tracking import get_client

    settings = get_settings(where)
    base, _ = ui_base(settings.tracking_uri, configured_ui)
    out = []
    for model in models:
        run_id = model.get("run_id") or None
        run = None
        if run_id:
            try:
                run = get_client(settings).get_run(run_id)
            except Exception:
                run = None  # a model logged elsewhere: its run id is still shown
        out.append(
            ModelInfo(
                resolved=str(model["resolved"]),
                path=str(model["path"]),
                hash=str(model["hash"]),
                run_id=run_id,
                run_name=(run.info.run_name or None) if run is not None else None,
                run_params=dict(sorted(run.data.params.items())) if run is not None else {},
                run_url=f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
                if run is not None
                else None,
            )
        )
    return out


def _outside_root(root: ServerRoot, path: str, exc: OutsideReadError) -> LabError:
    more = f" and {len(exc.reads) - 5} more" if len(exc.reads) > 5 else ""
    return LabError(
        403,
        f"the exported cells of {path!r} read {len(exc.reads)} file(s) outside the server "
        f"root {root.root}: {'; '.join(exc.reads[:5])}{more}; nothing was copied",
        OUTSIDE_HINT,
    )


class Services:
    """Services started from the UI (``mlnb serve``), one per folder, stopped with the server.

    Each service folder keeps its port from one export to the next (an open ``/docs`` tab
    goes on working): the port is remembered in ``.NAME.serve.json`` next to the folder
    (beside its log, ``.NAME.serve.log``; the folder itself is replaced by each export) and
    used again when it is free; only when another process holds it is a new one chosen,
    and :meth:`start` says so."""

    def __init__(self) -> None:
        self._procs: dict[Path, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, folder: Path, timeout: float = 90.0) -> tuple[str, str | None]:
        """Start (or restart) the service of ``folder``: its URL, and a note when its port
        changed (``None`` when it kept the one it had, or had none)."""
        import urllib.request

        from mlnb._net import PORT_RACE_ATTEMPTS, free_port, lost_port_race, port_is_free

        folder = folder.resolve()
        self.stop(folder)
        before = remembered_port(folder)
        port = before if before is not None and port_is_free(before) else free_port()
        proc, url, log = self._launch(folder, port)
        starts = 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                said = Path(log.name).read_text(errors="replace")
                if lost_port_race(said) and starts < PORT_RACE_ATTEMPTS:
                    starts += 1  # another process took the port first: a new one
                    port = free_port()
                    proc, url, log = self._launch(folder, port)
                    continue
                raise LabError(
                    409,
                    f"the service exited at start-up (status {proc.returncode})",
                    f"see {log.name}, or run `mlnb serve {folder}` in a terminal",
                )
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    remember_port(folder, port)
                    return url, port_note(before, port)
            except OSError:
                time.sleep(0.2)
        self.stop(folder)
        raise LabError(409, "the service did not answer /healthz in time", f"see {log.name}")

    def _launch(self, folder: Path, port: int) -> tuple[subprocess.Popen[bytes], str, IO[bytes]]:
        """``mlnb serve folder`` on ``port``: the process, its URL and its (closed) log."""
        log = open(folder.parent / f".{folder.name}.serve.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "mlnb", "serve", str(folder)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with self._lock:
            self._procs[folder] = proc
        return proc, f"http://127.0.0.1:{port}", log

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


def _port_file(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.serve.json"


def remembered_port(folder: Path) -> int | None:
    """The port the service of ``folder`` had last time it was started from the UI."""
    try:
        port = json.loads(_port_file(folder).read_text(encoding="utf-8")).get("port")
    except (OSError, ValueError, AttributeError):
        return None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def remember_port(folder: Path, port: int) -> None:
    record = {"folder": folder.name, "port": port}
    try:
        _port_file(folder).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError:
        return  # a read-only parent: the next start chooses a port again


def port_note(before: int | None, port: int) -> str | None:
    """What to tell the user when the service did not get its port back."""
    if before is None or before == port:
        return None
    return (
        f"port {before}, which this service had before, is taken by another process; the "
        f"service now runs on port {port}: open its docs at http://127.0.0.1:{port}/docs "
        "(tabs on the old port no longer reach it)"
    )


# -- versions ------------------------------------------------------------------------------
def version(root: ServerRoot, request: VersionRequest) -> VersionResponse:
    from mlnb.tracking import version as version_path

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
    #: each step's last progress event, in the order they were first seen
    progress: dict[str, StepProgress] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: ErrorResponse | None = None

    def model(self) -> PipelineJob:
        return PipelineJob(
            job_id=self.job_id,
            pipeline=self.pipeline,
            status=self.status,
            run_id=self.run_id,
            steps=list(self.steps),
            progress=list(self.progress.values()),
            log=list(self.log[-200:]),
            error=self.error,
        )

    def follow(self, root: ServerRoot, links: RunLinks) -> Callable[[StepEvent], None]:
        """The ``on_event`` of the run: each event becomes its step's progress (run id and
        notebook kept from earlier events of the step)."""

        def on_event(event: StepEvent) -> None:
            before = self.progress.get(event.step)
            run_id = event.run_id or (before.run_id if before else None)
            notebook = root.relative(Path(event.notebook)) if event.notebook else None
            self.progress[event.step] = StepProgress(
                name=event.step,
                state=event.state,
                cell=event.cell,
                message=event.message,
                run_id=run_id,
                notebook=notebook or (before.notebook if before else None),
                url=links.url(run_id),
                elapsed=round(event.elapsed, 1),
            )

        return on_event


class Pipelines:
    """Pipeline runs started from the UI, each in a background thread; one at a time per
    pipeline file (a second start answers 409)."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def start(
        self, root: ServerRoot, request: PipelineRequest, configured_ui: str = ""
    ) -> PipelineJob:
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
            for step in pipeline.steps:  # every step is queued until the runner says more
                job.progress[step.name] = StepProgress(
                    name=step.name, state="queued", cell=None, message=None, run_id=None,
                    notebook=None, url=None, elapsed=0.0,
                )  # fmt: skip
            self._jobs[job.job_id] = job
        thread = threading.Thread(
            target=self._run,
            args=(job, pipeline, request, root, configured_ui),
            name=f"mlnb-pipeline-{job.job_id}",
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

    def running(self, shown: str) -> str | None:
        """The id of the run of pipeline file ``shown`` that is still going, if any."""
        with self._lock:
            for job in self._jobs.values():
                if job.pipeline == shown and job.status == "running":
                    return job.job_id
        return None

    def _run(
        self,
        job: _Job,
        pipeline: Pipeline,
        request: PipelineRequest,
        root: ServerRoot,
        configured_ui: str,
    ) -> None:
        from mlnb.labserver._pipelines import RunLinks
        from mlnb.pipeline import PipelineFailed, run_pipeline

        def states(result: Any) -> list[StepState]:
            return [
                StepState(name=s.name, status=s.status, run_id=s.run_id, error=s.error)
                for s in result.steps.values()
            ]

        try:
            result = run_pipeline(
                pipeline,
                force=request.force,
                workers=request.workers,
                report=job.log.append,
                on_event=job.follow(root, RunLinks(pipeline.name, configured_ui)),
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

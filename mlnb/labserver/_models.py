"""Request and response shapes of the ``/mlnb/`` REST API.

``labextension/src/api.ts`` declares the same shapes as TypeScript interfaces, field for
field; ``tests/lab/test_api_contract.py`` fails when the two drift apart. Fields with a
default are optional in requests (``field?:`` in TypeScript); response fields are always
present (``null`` when there is nothing).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CompareResponse",
    "EndpointInfo",
    "ErrorResponse",
    "ExportRequest",
    "ExportResponse",
    "HistoryRun",
    "HistoryStep",
    "ModelInfo",
    "PipelineGraph",
    "PipelineHistory",
    "PipelineJob",
    "PipelineRequest",
    "RunSummary",
    "RunsResponse",
    "ScheduleInfo",
    "ScheduleRequest",
    "SchedulesResponse",
    "StepNode",
    "StepProgress",
    "StepState",
    "UiRequest",
    "UiResponse",
    "VersionRequest",
    "VersionResponse",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer: what went wrong and what to do about it, and the
    notebook cell it is about (position from 0) when there is one ("Go to cell")."""

    error: str
    hint: str
    cell: int | None = None


class RunSummary(BaseModel):
    run_id: str
    name: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED, SCHEDULED
    experiment_id: str
    start_time: int | None  # ms since the epoch
    end_time: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    url: str  # the run in the MLflow UI
    step: str | None  # a pipeline step's run: the step's name
    parent_run_id: str | None  # a pipeline step's run: the pipeline's run
    parent_url: str | None  # the pipeline's run in the MLflow UI
    executed_notebook: str | None  # a step's executed notebook, to open in JupyterLab
    pending: bool = False  # journaled, not yet created in the tracking store (no UI page yet)


class RunsResponse(BaseModel):
    """``GET /mlnb/runs?path=NOTEBOOK``: the runs of one notebook, newest first."""

    notebook: str
    tracking_uri: str
    ui_url: str
    ui_hint: str
    ui_start: bool  # the MLflow UI is not running and POST /mlnb/ui starts it
    idle_timeout: float  # seconds: an interactive run ends after this long without a cell
    active: bool  # a run of this notebook is still running
    runs: list[RunSummary]


class CompareResponse(BaseModel):
    """``GET /mlnb/compare?run=ID&run=ID``: what ``%mlnb compare`` shows, as HTML."""

    run_ids: list[str]
    differing_params: list[str]
    html: str


class UiRequest(_Request):
    """``POST /mlnb/ui``: start the MLflow UI on this project's store (or reuse it)."""

    path: str  # a notebook: the UI serves the store of its project


class UiResponse(BaseModel):
    """``POST /mlnb/ui``'s answer: 202 while the UI starts (ask again), 200 once it answers."""

    url: str  # the MLflow UI's base URL
    started: bool  # started by this request (False: it was running or starting already)
    ready: bool  # it answers at ``url`` (False: still starting; POST again)


class ExportRequest(_Request):
    """``POST /mlnb/export``."""

    path: str
    output: str | None = None  # default: build/services/<notebook name>
    force: bool = True  # replace an earlier export of the same notebook
    serve: bool = False  # also start the service and answer its URL
    allow_pickle: bool = False  # `mlnb export --allow-pickle`: pickled models may be served


class EndpointInfo(BaseModel):
    path: str
    function: str
    kind: str


class ModelInfo(BaseModel):
    """A model pinned in the service, and the MLflow run that logged it (when known)."""

    resolved: str
    path: str
    hash: str
    run_id: str | None
    run_name: str | None
    run_params: dict[str, str]
    run_url: str | None  # the run in the MLflow UI


class ExportResponse(BaseModel):
    folder: str
    endpoints: list[EndpointInfo]
    models: list[ModelInfo]
    verified: list[str]  # endpoints the export check called with the example
    serve_command: str
    service_url: str | None
    port_note: str | None  # the service's port moved (the one it had is taken), and why


class PipelineRequest(_Request):
    """``POST /mlnb/pipelines``: ``path`` is a pipeline file, or a notebook whose folder (or
    a folder above it) holds ``pipeline.yaml``."""

    path: str
    force: bool = False
    workers: int = 1


class StepState(BaseModel):
    name: str
    status: str  # ok, cached, failed, skipped
    run_id: str | None
    error: str | None


class StepProgress(BaseModel):
    """A step of a running pipeline, as its last progress event left it."""

    name: str
    state: str  # queued, running, cached, done, failed, skipped, retrying
    cell: str | None  # the running cell: "3/7 model.fit(X, y)"
    message: str | None
    run_id: str | None  # the step's MLflow run, in full
    notebook: str | None  # its executed notebook, relative to the server root
    url: str | None  # the step's run in the MLflow UI
    elapsed: float  # seconds since the pipeline run started


class PipelineJob(BaseModel):
    """``POST /mlnb/pipelines`` and ``GET /mlnb/pipelines/JOB``."""

    job_id: str
    pipeline: str
    status: str  # running, succeeded, failed
    run_id: str | None
    steps: list[StepState]
    progress: list[StepProgress]
    log: list[str]
    error: ErrorResponse | None


class StepNode(BaseModel):
    """A step of ``GET /mlnb/pipelines/graph``: what it runs, what it needs, its last run."""

    name: str
    notebook: str  # the source notebook, relative to the server root
    needs: list[str]
    up_to_date: bool
    reasons: list[str]  # why it would run again
    last_status: str | None  # ok, failed (None: never ran)
    last_run_id: str | None
    last_notebook: str | None
    last_url: str | None


class PipelineGraph(BaseModel):
    """``GET /mlnb/pipelines/graph?path=PIPELINE``: the DAG of a pipeline."""

    pipeline: str  # the pipeline file, relative to the server root
    name: str
    schedule: str | None  # the spec's own `schedule:` (fired by `mlnb schedule run`)
    steps: list[StepNode]
    job_id: str | None  # a run of it started from the UI that is still going
    ui_url: str
    ui_hint: str


class HistoryStep(BaseModel):
    name: str
    status: str  # ok, cached, failed, skipped
    run_id: str | None
    notebook: str | None
    url: str | None
    seconds: float
    error: str | None


class HistoryRun(BaseModel):
    run_id: str | None  # the pipeline's MLflow run (None: every step was up to date)
    status: str  # succeeded, failed
    started_at: float  # epoch seconds
    finished_at: float
    steps: list[HistoryStep]


class PipelineHistory(BaseModel):
    """``GET /mlnb/pipelines/history?path=PIPELINE``: its runs, newest first."""

    pipeline: str
    runs: list[HistoryRun]


class ScheduleRequest(_Request):
    """``POST /mlnb/schedules``: run the pipeline ``path`` on ``cron`` (UTC)."""

    path: str
    cron: str


class ScheduleInfo(BaseModel):
    id: str
    pipeline: str
    cron: str
    next_run: str | None  # ISO 8601, UTC
    last_fired: str | None
    enabled: bool


class SchedulesResponse(BaseModel):
    """``GET /mlnb/schedules?path=PIPELINE`` (and the answer of POST and DELETE)."""

    schedules: list[ScheduleInfo]
    scheduler_hint: str


class VersionRequest(_Request):
    """``POST /mlnb/version``: version a file or folder by content."""

    path: str
    name: str | None = None


class VersionResponse(BaseModel):
    name: str
    number: int
    hash: str
    kind: str
    size: int | None

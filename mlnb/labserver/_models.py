"""Request and response shapes of the ``/mlnb/`` REST API.

``labextension/src/api.ts`` declares the same shapes as TypeScript interfaces, field for
field; ``tests/lab/test_api_contract.py`` fails when the two drift apart. Fields with a
default are optional in requests (``field?:`` in TypeScript); response fields are always
present (``null`` when there is nothing).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = [
    "EndpointInfo",
    "ErrorResponse",
    "ExportRequest",
    "ExportResponse",
    "ModelInfo",
    "PipelineJob",
    "PipelineRequest",
    "RunSummary",
    "RunsResponse",
    "StepState",
    "VersionRequest",
    "VersionResponse",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer: what went wrong and what to do about it."""

    error: str
    hint: str


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


class RunsResponse(BaseModel):
    """``GET /mlnb/runs?path=NOTEBOOK``: the runs of one notebook, newest first."""

    notebook: str
    tracking_uri: str
    ui_url: str
    ui_hint: str
    active: bool  # a run of this notebook is still running
    runs: list[RunSummary]


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
    resolved: str
    path: str
    hash: str


class ExportResponse(BaseModel):
    folder: str
    endpoints: list[EndpointInfo]
    models: list[ModelInfo]
    verified: list[str]  # endpoints the export check called with the example
    serve_command: str
    service_url: str | None


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


class PipelineJob(BaseModel):
    """``POST /mlnb/pipelines`` and ``GET /mlnb/pipelines/JOB``."""

    job_id: str
    pipeline: str
    status: str  # running, succeeded, failed
    run_id: str | None
    steps: list[StepState]
    log: list[str]
    error: ErrorResponse | None


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

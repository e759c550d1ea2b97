"""REST handlers under ``/mlnb/``: parse the request into a model, call the library in a
worker thread, answer the response model as JSON.

Errors are mapped here, once: :class:`LabError` carries its own status; a request body that
does not fit its model is a 400 naming the field; mlnb's own errors are 400, 404 (something
that does not exist) or 503 (the tracking server is down); anything else is a 500 with a
JSON body and no traceback (the traceback goes to the server log). Paths are checked against
the server root in one place, :class:`~mlnb.labserver._paths.ServerRoot` (``self.root``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from pydantic import BaseModel, ValidationError

from mlnb._text import first_line
from mlnb.exceptions import MlnbError, TrackingUnavailableError, VersionNotFoundError
from mlnb.labserver import _actions, _pipelines
from mlnb.labserver._errors import LabError
from mlnb.labserver._models import (
    ErrorResponse,
    ExportRequest,
    PipelineRequest,
    ScheduleRequest,
    UiRequest,
    VersionRequest,
)
from mlnb.labserver._paths import ServerRoot

__all__ = ["handlers"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _mlnb_status(exc: MlnbError) -> int:
    if isinstance(exc, TrackingUnavailableError):
        return 503
    if isinstance(exc, VersionNotFoundError):
        return 404
    return 400


def _mlnb_hint(exc: MlnbError) -> str:
    if isinstance(exc, TrackingUnavailableError):
        return "start the tracking server or fix MLFLOW_TRACKING_URI, then refresh"
    return "the message says what to change; nothing was written"


class _Handler(ExtensionHandlerMixin, APIHandler):
    """Common parts: the server root, JSON bodies in and out, errors as ``ErrorResponse``."""

    @property
    def root(self) -> ServerRoot:
        """Where requests may reach: the server root, hidden files as the contents API
        allows them (``ContentsManager.allow_hidden``)."""
        allow_hidden = bool(getattr(self.contents_manager, "allow_hidden", False))
        return ServerRoot(Path(self.settings["server_root_dir"]), allow_hidden=allow_hidden)

    @property
    def state(self) -> Any:
        return self.extensionapp

    @property
    def mlflow_ui(self) -> str:
        """The configured MLflow UI (``MlnbLabApp.mlflow_ui_url``), "" when not set."""
        return str(getattr(self.state, "mlflow_ui_url", "") or "")

    def body_as(self, model: type[M]) -> M:
        fields = f"send a JSON object with the fields of {model.__name__}: "
        fields += ", ".join(model.model_fields)
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise LabError(400, f"the request body is not JSON ({exc})", fields) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "body"
            raise LabError(400, f"{where}: {problem['msg']}", fields) from None

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker thread (the library blocks: MLflow, kernels, files)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(func, *args))

    def reply(self, model: BaseModel, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(model.model_dump_json())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabError):
            body = ErrorResponse(error=exc.error, hint=exc.hint, cell=exc.cell)
            status = exc.status
        elif isinstance(exc, MlnbError):
            status = _mlnb_status(exc)
            body = ErrorResponse(
                error=first_line(exc, limit=2000),
                hint=_mlnb_hint(exc),
                cell=getattr(exc, "cell", None),
            )
        elif isinstance(exc, tornado.web.HTTPError):
            status = exc.status_code
            body = ErrorResponse(
                error=exc.log_message or exc.reason or f"HTTP {status}",
                hint="log in to JupyterLab again" if status == 403 else "check the request",
            )
        else:
            status = 500
            body = ErrorResponse(
                error=f"unexpected {type(exc).__name__}: {first_line(exc)}"
                if exc is not None
                else "unexpected server error",
                hint="see the Jupyter server log; please report it to the mlnb developers",
            )
        self.clear_header("Content-Type")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body.model_dump_json())

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (LabError, MlnbError)):
            self.log.info("mlnb: %s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)


class RunsHandler(_Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        ui = str(getattr(self.state, "mlflow_ui_url", "") or "")
        runs = await self.call(_actions.list_runs, self.root, path, ui, self.state.mlflow_ui)
        self.reply(runs)  # tornado answers 304 to a matching If-None-Match (the sidebar's)


class CompareHandler(_Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        run_ids = self.get_query_arguments("run")
        self.reply(await self.call(_actions.compare, self.root, run_ids))


class UiHandler(_Handler):
    @tornado.web.authenticated
    async def post(self) -> None:
        request = self.body_as(UiRequest)
        answer = await self.call(_actions.start_ui, self.root, request, self.state.mlflow_ui)
        self.reply(answer, status=200 if answer.ready else 202)  # 202: starting, ask again


class ExportHandler(_Handler):
    @tornado.web.authenticated
    async def post(self) -> None:
        request = self.body_as(ExportRequest)
        ui = str(getattr(self.state, "mlflow_ui_url", "") or "")
        services = self.state.services
        self.reply(await self.call(_actions.export, self.root, request, services, ui))


class PipelinesHandler(_Handler):
    @tornado.web.authenticated
    async def post(self) -> None:
        request = self.body_as(PipelineRequest)
        job = await self.call(self.state.pipelines.start, self.root, request, self.mlflow_ui)
        self.reply(job, status=202)


class PipelineGraphHandler(_Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        spec = await self.call(_actions.find_pipeline, self.root, path)
        job_id = self.state.pipelines.running(self.root.relative(spec))
        self.reply(await self.call(_pipelines.graph, self.root, path, self.mlflow_ui, job_id))


class PipelineHistoryHandler(_Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        self.reply(await self.call(_pipelines.history, self.root, path, self.mlflow_ui))


class ExecutedNotebookHandler(_Handler):
    """A step's executed notebook as read-only HTML (the panel shows it in a tab)."""

    @property
    def content_security_policy(self) -> str:
        # its outputs are the notebook's own: no script runs, styles and inline images show
        return (
            "frame-ancestors 'self'; default-src 'none'; script-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:; font-src data:"
        )

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        html = await self.call(_pipelines.executed_notebook_html, self.root, path)
        self.finish(html, set_content_type="text/html; charset=UTF-8")


class SchedulesHandler(_Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        self.reply(await self.call(_pipelines.schedules, self.root, path))

    @tornado.web.authenticated
    async def post(self) -> None:
        request = self.body_as(ScheduleRequest)
        self.reply(await self.call(_pipelines.add_schedule, self.root, request), status=201)


class ScheduleHandler(_Handler):
    @tornado.web.authenticated
    async def delete(self, schedule_id: str) -> None:
        path = self.get_query_argument("path", "")
        self.reply(await self.call(_pipelines.remove_schedule, self.root, schedule_id, path))


class PipelineJobHandler(_Handler):
    @tornado.web.authenticated
    async def get(self, job_id: str) -> None:
        self.reply(self.state.pipelines.get(job_id))


class VersionHandler(_Handler):
    @tornado.web.authenticated
    async def post(self) -> None:
        request = self.body_as(VersionRequest)
        self.reply(await self.call(_actions.version, self.root, request))


handlers: list[tuple[str, type[_Handler]]] = [
    (r"/mlnb/runs", RunsHandler),
    (r"/mlnb/compare", CompareHandler),
    (r"/mlnb/ui", UiHandler),
    (r"/mlnb/export", ExportHandler),
    (r"/mlnb/pipelines", PipelinesHandler),
    (r"/mlnb/pipelines/graph", PipelineGraphHandler),
    (r"/mlnb/pipelines/history", PipelineHistoryHandler),
    (r"/mlnb/pipelines/notebook", ExecutedNotebookHandler),
    (r"/mlnb/pipelines/([0-9a-f]+)", PipelineJobHandler),
    (r"/mlnb/schedules", SchedulesHandler),
    (r"/mlnb/schedules/([0-9a-f]+)", ScheduleHandler),
    (r"/mlnb/version", VersionHandler),
]

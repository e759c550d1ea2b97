"""The service's own routes, one step each, added by ``create_app``: the probes
(``/healthz``, ``/readyz``), ``/version``, ``/metrics``, the monitor pages
(``/monitor/drift``, ``/monitor/feedback``), ``POST /feedback``, the error handlers (a 422
naming the field, HTTP errors in the one error body) and the OpenAPI document's errors.
The endpoints' own handlers are in ``_handlers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlnb.serve._audit import AuditUnavailable, FeedbackError
from mlnb.serve._contract import (
    DriftReport,
    ErrorResponse,
    FeedbackAnswer,
    FeedbackSummary,
    Health,
    Readiness,
    VersionInfo,
    document_errors,
)
from mlnb.serve._handlers import JSONBytes, body_errors, unavailable
from mlnb.serve._metrics import Metrics
from mlnb.serve._runtime import Runtime
from mlnb.serve._service import Service
from mlnb.serve._settings import ServeSettings

__all__ = [
    "OPEN_PATHS",
    "OWN_PATHS",
    "FeedbackBody",
    "add_error_handlers",
    "add_feedback",
    "add_metrics",
    "add_monitor",
    "add_probes",
    "add_version",
    "document_openapi",
]

#: paths answered without the API key
OPEN_PATHS = {"/healthz", "/readyz"}
#: the service's own paths (besides its endpoints)
OWN_PATHS = frozenset(
    {"/healthz", "/readyz", "/version", "/metrics", "/monitor/drift", "/monitor/feedback"}
    | {"/feedback"}
)
#: a response model checks and documents an answer; keys the handler left out stay out
_AS_RETURNED: dict[str, Any] = {"response_model_exclude_unset": True}


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    label: Any


def _shown(path: Path, folder: Path) -> str:
    """``path`` from the service folder when it is inside (nothing of the machine shown)."""
    path = Path(path).resolve()
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def add_probes(app: FastAPI, routes: list[dict[str, Any]]) -> None:
    @app.get("/healthz", tags=["ops"], response_model=Health)
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=Readiness)
    async def readyz() -> dict[str, Any]:
        """The models are loaded and the endpoints ready."""
        return {"status": "ready", "endpoints": [r["path"] for r in routes]}

    # Probes answer HEAD too (load balancers and `curl -I` use it): the status, no body.
    @app.head("/healthz", tags=["ops"], response_class=Response)
    async def healthz_head() -> Response:
        """The process is up (the status of GET /healthz, without a body)."""
        return Response(status_code=200)

    @app.head("/readyz", tags=["ops"], response_class=Response)
    async def readyz_head() -> Response:
        """The models are loaded (the status of GET /readyz, without a body)."""
        return Response(status_code=200)


def add_version(
    app: FastAPI, service: Service, runtime: Runtime, routes: list[dict[str, Any]]
) -> None:
    metadata = service.metadata

    @app.get("/version", tags=["ops"], response_model=VersionInfo, **_AS_RETURNED)
    async def version() -> dict[str, Any]:
        """What is being served: the export metadata, the models answering and the safety
        nets (routing, breakers, fallbacks, profile, audit log, alias followed)."""
        public = {k: v for k, v in metadata.items() if k not in ("example", "integrity")}
        router = runtime.router
        champion = router.champion.model
        if champion.get("version") != (metadata.get("models") or [{}])[0].get("version"):
            # following an alias: the pinned record of the model answering now
            public["models"] = [
                {**(metadata.get("models") or [{}])[0], **champion},
                *(metadata.get("models") or [])[1:],
            ]
        return {
            **public,
            "endpoints": routes,
            "serving": router.to_dict(),
            "breakers": {p: b.to_dict() for p, b in runtime.breakers.items()},
            "fallbacks": {p: f.source for p, f in runtime.fallbacks.items()},
            "profile": {
                "name": getattr(runtime.profile, "name", None),
                "error": runtime.profile_error,
                "features": {
                    p: q.mismatch | {"checked": q.features} for p, q in runtime.qualities.items()
                },
            },
            "audit": (
                _shown(runtime.audit.folder, service.folder) if runtime.audit is not None else None
            ),
            "signature": service.signature,
            "follow": runtime.follower.to_dict() if runtime.follower is not None else None,
        }


def add_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, in-flight, errors, model, process RSS,
        drift, fallbacks, breaker state, shadow agreement, live accuracy, alerts."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def add_monitor(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/monitor/drift", tags=["monitor"], response_model=DriftReport, **_AS_RETURNED)
    async def drift() -> dict[str, Any]:
        """Drift of the live inputs (the rolling window) against the training profile."""
        if runtime.drift is None:
            reason = runtime.profile_error or (
                "this service has no profile: record one with mlnb.profile(X_train) (or "
                "%mlnb profile VAR) before exporting"
                if runtime.profile is None
                else "drift is off (MLNB_DRIFT=off, or the profile shares no column with "
                "the endpoints)"
            )
            return {
                "profile": getattr(runtime.profile, "name", None),
                "n": 0,
                "features": {},
                "drifted": [],
                "checked_at": None,
                "detail": reason,
            }
        return runtime.drift.result

    @app.get("/monitor/feedback", tags=["monitor"], response_model=FeedbackSummary, **_AS_RETURNED)
    async def feedback_summary() -> dict[str, Any]:
        """Live accuracy from the labels sent to POST /feedback."""
        if runtime.audit is None:
            return {"endpoints": {}, "detail": "the audit log is off (MLNB_AUDIT=off)"}
        return runtime.audit.accuracy()


def add_feedback(app: FastAPI, runtime: Runtime, metrics: Metrics) -> None:
    @app.post(
        "/feedback",
        tags=["monitor"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": FeedbackBody.model_json_schema()}},
            }
        },
        responses={
            200: {"model": FeedbackAnswer},
            404: {"model": ErrorResponse, "description": "No answer with that request id"},
            409: {
                "model": ErrorResponse,
                "description": "The audit log is off, or the number of labels is not the "
                "number of predictions of that answer",
            },
            422: {"description": "The body is not {request_id, label}"},
        },
    )
    async def feedback(request: Request) -> Response:
        """The true label of an earlier answer: ``{"request_id": ..., "label": ...}`` (a
        list of labels for an answer of several rows)."""
        request_id = request.state.request_id
        try:
            body = FeedbackBody.model_validate_json(await request.body(), strict=True)
        except ValidationError as exc:
            raise body_errors(exc) from None
        if runtime.audit is None:
            return JSONBytes(
                {
                    "detail": "feedback needs the audit log, which is off "
                    "(MLNB_AUDIT=off); unset it to record labels.",
                    "request_id": request_id,
                },
                status_code=409,
            )
        from starlette.concurrency import run_in_threadpool

        try:
            summary = await run_in_threadpool(runtime.audit.feedback, body.request_id, body.label)
        except FeedbackError as exc:
            return JSONBytes({"detail": str(exc), "request_id": request_id}, status_code=exc.status)
        except AuditUnavailable as exc:  # not recorded: not answered as if it were
            return unavailable("/feedback", request_id, exc, metrics, "audit")
        return JSONBytes({**summary, "request_id": request_id})


def add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        metrics.errors.labels(request.url.path, "validation").inc()
        return JSONBytes(
            {"detail": errors, "request_id": getattr(request.state, "request_id", None)},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONBytes(
            {"detail": exc.detail, "request_id": getattr(request.state, "request_id", None)},
            status_code=exc.status_code,
            headers=exc.headers,  # e.g. Allow on a 405
        )


def document_openapi(app: FastAPI, settings: ServeSettings, routes: list[dict[str, Any]]) -> None:
    """The OpenAPI document lists every status each operation can answer."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for item in schema.get("paths", {}).values():
                body = item.get("post", {}).get("requestBody", {}).get("content", {})
                for content in body.values():
                    components.update(content.get("schema", {}).pop("$defs", {}))
            document_errors(
                schema,
                endpoints={r["path"] for r in routes},
                open_paths=OPEN_PATHS,
                keyed=bool(settings.api_key),
                max_body_bytes=settings.max_body_bytes,
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

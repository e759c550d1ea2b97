"""The FastAPI app of an exported service.

One pure-ASGI middleware does, per request and in one pass: the request id
(``X-Request-ID`` taken or made, returned on every response, in every log line), the API key
(``MLNB_API_KEY``), the body size limit (413), in-flight/latency/status metrics and one JSON
log line. Exception handlers are registered once: bad input is a 422 naming the field, a
failure inside the model a 500 without a traceback. The endpoints' handlers are in
``_handlers``; the safety nets (routing, breakers, audit, drift, alerts) are put together in
``_setup`` and act in ``_runtime``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
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
from mlnb.serve._cors import add_cors
from mlnb.serve._env import env_int
from mlnb.serve._handlers import JSONBytes, add_endpoint, body_errors, unavailable
from mlnb.serve._metrics import Metrics
from mlnb.serve._runtime import Runtime
from mlnb.serve._service import ServiceError, load_service
from mlnb.serve._setup import build_runtime

__all__ = ["ServeSettings", "create_app", "request_id_var"]

log = logging.getLogger("mlnb.serve")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlnb_request_id", default=None
)
OPEN_PATHS = {"/healthz", "/readyz"}
#: a response model checks and documents an answer; keys the handler left out stay out
_AS_RETURNED: dict[str, Any] = {"response_model_exclude_unset": True}
API_KEY_HELP = "missing or wrong API key: send it as X-API-Key or Authorization: Bearer"


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None
    max_body_bytes: int
    batching: bool | None  # None: per endpoint (on when vectorized)
    max_batch_rows: int

    @classmethod
    def from_env(cls) -> ServeSettings:
        def flag(name: str) -> bool | None:
            raw = os.environ.get(name)
            return None if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}

        return cls(
            api_key=os.environ.get("MLNB_API_KEY") or None,
            max_body_bytes=env_int("MLNB_MAX_BODY_BYTES", 1024 * 1024),
            batching=flag("MLNB_BATCHING"),
            max_batch_rows=env_int("MLNB_MAX_BATCH_ROWS", 512),
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key in (
            "method",
            "path",
            "status",
            "latency_ms",
            "client",
            "batch",
            "event",
            "details",
        ):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return orjson.dumps(doc).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def _json_error(
    body: dict[str, Any], request_id: str | None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An error's body and headers; the middleware adds ``x-request-id`` to every answer."""
    payload = orjson.dumps({**body, "request_id": request_id})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    return payload, headers


class ServiceMiddleware:
    def __init__(
        self,
        app: Any,
        settings: ServeSettings,
        metrics: Metrics,
        routes: set[str],
        body_routes: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.routes = routes
        self.body_routes = body_routes  # (method, path) that take a JSON body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        api_key: bytes | None = None
        length = None
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
            elif name == b"x-api-key":
                api_key = value  # bytes: any header value compares, none can raise
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                api_key = value[7:]
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
        request_id = request_id or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        path = scope["path"]
        label = path if path in self.routes else "other"
        status_holder = [0]  # 0 until a response starts

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        async def reply(status: int, body: dict[str, Any]) -> None:
            payload, headers = _json_error(body, request_id)
            await send_with_id(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": payload})

        self.metrics.in_flight.inc()
        try:
            expected_key = self.settings.api_key
            if (
                expected_key
                and path not in OPEN_PATHS
                and (
                    api_key is None
                    or not hmac.compare_digest(api_key, expected_key.encode("utf-8"))
                )
            ):
                await reply(401, {"detail": API_KEY_HELP})
                return
            if (scope["method"], path) in self.body_routes and not _is_json(content_type):
                # A browser posts text/plain and forms cross-site without a preflight; only
                # JSON (which needs one) reaches the handlers.
                shown = (content_type or b"none").decode("latin-1")[:100]
                await reply(
                    415,
                    {
                        "detail": f"Content-Type must be application/json (got {shown}); "
                        "send the body as JSON with that header"
                    },
                )
                return
            limit = self.settings.max_body_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                await reply(413, {"detail": f"request body larger than {limit} bytes"})
                return
            received = 0

            async def limited_receive() -> dict[str, Any]:
                nonlocal received
                message: dict[str, Any] = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _TooLarge()
                return message

            try:
                await self.app(scope, limited_receive, send_with_id)
            except _TooLarge:
                await reply(413, {"detail": f"request body larger than {limit} bytes"})
            except Exception:
                log.exception("unhandled error")
                if status_holder[0] == 0:  # no response started yet: answer, no traceback
                    await reply(500, {"detail": "internal error; see the log for this request id"})
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            status = status_holder[0] or 500
            self.metrics.observe(label, status, elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            request_id_var.reset(token)


class _TooLarge(Exception):
    pass


def _is_json(content_type: bytes | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def _with_lifespan(app: FastAPI, runtime_ref: list[Runtime]) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        for runtime in runtime_ref:
            runtime.close()

    return lifespan


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    label: Any


def _shown(path: Path, folder: Path) -> str:
    """``path`` from the service folder when it is inside (nothing of the machine shown)."""
    path = Path(path).resolve()
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def create_app(folder: str | Path | None = None, settings: ServeSettings | None = None) -> FastAPI:
    """The service's app (``folder`` defaults to ``$MLNB_SERVICE_DIR``)."""
    folder = folder or os.environ.get("MLNB_SERVICE_DIR")
    if not folder:
        raise ServiceError("no service folder given: pass DIR or set MLNB_SERVICE_DIR.")
    settings = settings or ServeSettings.from_env()
    service = load_service(folder)
    metadata = service.metadata
    metrics = Metrics(service)
    runtime_ref: list[Runtime] = []
    # Swagger UI and ReDoc served from the package: /docs works without internet.
    app = FastAPIOffline(
        title=metadata.get("name", "mlnb service"),
        version=str(
            (metadata.get("models") or [{}])[0].get("version") or metadata.get("mlnb_version")
        ),
        description=f"Exported by mlnb from {metadata.get('notebook', {}).get('path')}.",
        default_response_class=JSONBytes,
        lifespan=_with_lifespan(FastAPI(), runtime_ref),
    )
    app.state.service = service
    runtime = build_runtime(service, settings, metrics)
    routes = [
        add_endpoint(app, runtime, runtime.plans[e.path], e.function) for e in service.endpoints
    ]
    runtime_ref.append(runtime)
    app.state.runtime = runtime
    app.state.routes = routes

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

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, in-flight, errors, model, process RSS,
        drift, fallbacks, breaker state, shadow agreement, live accuracy, alerts."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

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
    known = {r["path"] for r in routes} | {
        "/healthz",
        "/readyz",
        "/version",
        "/metrics",
        "/monitor/drift",
        "/monitor/feedback",
        "/feedback",
    }
    body_routes = frozenset(
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in (route.methods or set()) & {"POST", "PUT", "PATCH"}
    )
    app.add_middleware(
        ServiceMiddleware,
        settings=settings,
        metrics=metrics,
        routes=known,
        body_routes=body_routes,
    )
    add_cors(app)  # MLNB_CORS_ORIGINS: none by default
    log.info("service ready", extra={"path": str(service.folder)})
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (``mlnb serve``): configured by environment variables."""
    import gc

    configure_logging(os.environ.get("MLNB_LOG_LEVEL", "INFO"))
    app = create_app()
    # MLflow, pandas, the model and pydantic leave ~250k long-lived objects: a full garbage
    # collection over them paused the server for ~200 ms under load (the p99). Move them
    # out of the collector's sight once loaded, and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    return app

"""The FastAPI app of an exported service.

One pure-ASGI middleware does, per request and in one pass: the request id
(``X-Request-ID`` taken or made, returned on every response, in every log line), the API key
(``MLNB_API_KEY``), the body size limit (413), in-flight/latency/status metrics and one JSON
log line. Exception handlers are registered once: bad input is a 422 naming the field, a
failure inside the model a 500 without a traceback. ``create_app`` reads as its steps:
settings (``_settings``), the service, the runtime (the safety nets: routing, breakers,
audit, drift, alerts, put together in ``_setup``, acting in ``_runtime``), the endpoints
(``_handlers``), the service's own routes (``_routes``), the middleware.
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
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from mlnb.serve._cors import add_cors
from mlnb.serve._handlers import JSONBytes, add_endpoint
from mlnb.serve._metrics import Metrics
from mlnb.serve._routes import (
    OPEN_PATHS,
    OWN_PATHS,
    add_error_handlers,
    add_feedback,
    add_metrics,
    add_monitor,
    add_probes,
    add_version,
    document_openapi,
)
from mlnb.serve._runtime import Runtime
from mlnb.serve._service import ServiceError, load_service
from mlnb.serve._settings import ServeSettings
from mlnb.serve._setup import build_runtime

__all__ = ["ServeSettings", "create_app", "request_id_var"]

log = logging.getLogger("mlnb.serve")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlnb_request_id", default=None
)
API_KEY_HELP = "missing or wrong API key: send it as X-API-Key or Authorization: Bearer"


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


def _service_folder(folder: str | Path | None, settings: ServeSettings) -> str | Path:
    folder = folder or settings.service_dir
    if not folder:
        raise ServiceError("no service folder given: pass DIR or set MLNB_SERVICE_DIR.")
    return folder


def _new_app(metadata: dict[str, Any], runtime_ref: list[Runtime]) -> FastAPI:
    """The FastAPI app, titled from the export; Swagger UI and ReDoc served from the
    package (``/docs`` works without internet)."""
    return FastAPIOffline(
        title=metadata.get("name", "mlnb service"),
        version=str(
            (metadata.get("models") or [{}])[0].get("version") or metadata.get("mlnb_version")
        ),
        description=f"Exported by mlnb from {metadata.get('notebook', {}).get('path')}.",
        default_response_class=JSONBytes,
        lifespan=_with_lifespan(FastAPI(), runtime_ref),
    )


def _add_middleware(
    app: FastAPI, settings: ServeSettings, metrics: Metrics, routes: list[dict[str, Any]]
) -> None:
    """The service middleware (inside) and CORS (outermost: a preflight carries no key)."""
    known = {r["path"] for r in routes} | OWN_PATHS
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
    add_cors(app, settings.cors_origins)  # MLNB_CORS_ORIGINS: none by default


def create_app(folder: str | Path | None = None, settings: ServeSettings | None = None) -> FastAPI:
    """The service's app (``folder`` defaults to ``$MLNB_SERVICE_DIR``; ``settings`` to
    :meth:`ServeSettings.from_env`)."""
    settings = settings or ServeSettings.from_env()
    service = load_service(_service_folder(folder, settings), signing_key=settings.signing_key)
    metrics = Metrics(service)
    runtime_ref: list[Runtime] = []
    app = _new_app(service.metadata, runtime_ref)
    app.state.service = service
    runtime = build_runtime(service, settings, metrics)
    routes = [
        add_endpoint(app, runtime, runtime.plans[e.path], e.function) for e in service.endpoints
    ]
    runtime_ref.append(runtime)
    app.state.runtime = runtime
    app.state.routes = routes
    add_probes(app, routes)
    add_version(app, service, runtime, routes)
    add_metrics(app, metrics)
    add_monitor(app, runtime)
    add_feedback(app, runtime, metrics)
    add_error_handlers(app, metrics)
    document_openapi(app, settings, routes)
    _add_middleware(app, settings, metrics, routes)
    log.info("service ready", extra={"path": str(service.folder)})
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (``mlnb serve``): configured by environment variables."""
    import gc

    settings = ServeSettings.from_env()
    configure_logging(settings.log_level)
    app = create_app(settings=settings)
    # MLflow, pandas, the model and pydantic leave ~250k long-lived objects: a full garbage
    # collection over them paused the server for ~200 ms under load (the p99). Move them
    # out of the collector's sight once loaded, and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    return app

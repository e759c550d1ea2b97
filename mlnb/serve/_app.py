"""The FastAPI app of an exported service.

One pure-ASGI middleware does, per request and in one pass: the request id
(``X-Request-ID`` taken or made, returned on every response, in every log line), the API key
(``MLNB_API_KEY``), the body size limit (413), in-flight/latency/status metrics and one JSON
log line. Exception handlers are registered once: bad input is a 422 naming the field, a
failure inside the model a 500 without a traceback.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlnb.serve._batching import Batcher, to_list
from mlnb.serve._metrics import Metrics
from mlnb.serve._schemas import EndpointShape, shape_of
from mlnb.serve._service import Endpoint, Service, ServiceError, load_service

__all__ = ["ServeSettings", "create_app", "request_id_var"]

log = logging.getLogger("mlnb.serve")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlnb_request_id", default=None
)
OPEN_PATHS = {"/healthz", "/readyz"}
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
            max_body_bytes=int(os.environ.get("MLNB_MAX_BODY_BYTES", str(1024 * 1024))),
            batching=flag("MLNB_BATCHING"),
            max_batch_rows=int(os.environ.get("MLNB_MAX_BATCH_ROWS", "512")),
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
        for key in ("method", "path", "status", "latency_ms", "client", "batch"):
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
    status: int, body: dict[str, Any], request_id: str | None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    payload = orjson.dumps({**body, "request_id": request_id})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    return payload, headers


class ServiceMiddleware:
    def __init__(
        self, app: Any, settings: ServeSettings, metrics: Metrics, routes: set[str]
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        api_key = None
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                api_key = value[7:].decode("latin-1")
            elif name == b"content-length":
                length = value
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
            payload, headers = _json_error(status, body, request_id)
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
                and (api_key is None or not hmac.compare_digest(api_key, expected_key))
            ):
                await reply(401, {"detail": API_KEY_HELP})
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


def _model_failure(path: str, request_id: str, exc: Exception, metrics: Metrics) -> Response:
    """A failure inside the endpoint function, as an answer: a 422 when the model refused
    values that passed the schema (ValueError, TypeError, KeyError), else a 500; never a
    traceback to the client (the log has it, under the request id)."""
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        metrics.errors.labels(path, "model_input").inc()
        log.warning("the model refused the input: %s: %s", type(exc).__name__, exc)
        return JSONBytes(
            {
                "detail": f"the model refused the input: {type(exc).__name__}: {exc}",
                "request_id": request_id,
            },
            status_code=422,
        )
    metrics.errors.labels(path, "server").inc()
    log.error("prediction failed", exc_info=exc)
    return JSONBytes(
        {
            "detail": "the prediction failed on the server; see its log for this request id",
            "request_id": request_id,
        },
        status_code=500,
    )


class JSONBytes(Response):
    """JSON rendered by orjson (numpy values included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


async def _validated(request: Request, shape: EndpointShape) -> Any:
    """The request body parsed and validated in one step (orjson + pydantic, compiled once)."""
    try:
        return shape.request.validate_json(await request.body())
    except ValidationError as exc:
        raise _body_errors(exc) from None


def _body_errors(exc: ValidationError) -> RequestValidationError:
    """pydantic's errors with FastAPI's ``body`` prefix on each location."""
    errors = exc.errors(include_url=False)
    for error in errors:
        error["loc"] = ("body", *error.get("loc", ()))
    return RequestValidationError(errors)


def _frame_predict(function: Any, shape: EndpointShape) -> Any:
    import pandas as pd

    columns = shape.columns

    def run(records: list[dict[str, Any]]) -> list[Any]:
        frame = pd.DataFrame.from_records(records, columns=columns)
        return to_list(function(frame))

    return run


def _vectorized(run: Any, example: Any) -> bool:
    """Does the endpoint answer n rows with n answers? (Checked once, with the example.)"""
    if not example:
        return False
    try:
        records = list(example) * 2
        return len(run(records)) == len(records)
    except Exception:
        return False


def _add_endpoint(
    app: FastAPI, service: Service, endpoint: Endpoint, settings: ServeSettings, metrics: Metrics
) -> dict[str, Any]:
    meta: dict[str, Any] = next(
        (e for e in service.metadata.get("endpoints", []) if e.get("path") == endpoint.path), {}
    )
    example = meta.get("example") or service.example
    example_value = (example or {}).get("value")
    shape = shape_of(endpoint.function, vars(service.module), example_value, meta.get("schema"))
    model = service.model_info
    path = endpoint.path
    name = endpoint.function.__name__

    if shape.kind == "dataframe":
        run = _frame_predict(endpoint.function, shape)
        example_records = (example or {}).get("records") or []
        wants_batch = endpoint.spec.batch if endpoint.spec.batch is not None else settings.batching
        batching = _vectorized(run, example_records) if wants_batch is None else bool(wants_batch)
        batcher = (
            Batcher(run, settings.max_batch_rows, on_batch=metrics.batch_observer(path))
            if batching
            else None
        )

        async def handler(request: Request) -> Response:
            records = (await _validated(request, shape))["records"]
            if not records:
                raise RequestValidationError(
                    [
                        {
                            "type": "too_short",
                            "loc": ("body", "records"),
                            "msg": "records must hold at least one row",
                            "input": [],
                        }
                    ]
                )
            if batcher is not None:
                try:
                    predictions = await batcher.submit(records)
                except Exception as exc:
                    return _model_failure(path, request.state.request_id, exc, metrics)
            else:
                from starlette.concurrency import run_in_threadpool

                try:
                    predictions = await run_in_threadpool(run, records)
                except Exception as exc:
                    return _model_failure(path, request.state.request_id, exc, metrics)
            return JSONBytes(
                {"predictions": predictions, "model": model, "request_id": request.state.request_id}
            )

    else:
        batching = False
        from starlette.concurrency import run_in_threadpool

        def call(payload: Any) -> Any:
            if shape.single_model:
                result = endpoint.function(payload)
            else:
                result = endpoint.function(**{k: getattr(payload, k) for k in shape.params})
            if shape.returns is not None:
                return shape.returns.dump_python(result, mode="json")
            return result

        async def handler(request: Request) -> Response:
            payload = await _validated(request, shape)
            try:
                result = await run_in_threadpool(call, payload)
            except Exception as exc:
                return _model_failure(path, request.state.request_id, exc, metrics)
            return JSONBytes(result, headers={"x-request-id": request.state.request_id})

    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"application/json": {"schema": shape.response_schema or {}}}},
        422: {"description": "The body does not match the schema (field-level errors)"},
    }
    app.add_api_route(
        path,
        handler,
        methods=["POST"],
        name=name,
        summary=(endpoint.function.__doc__ or f"{name} from the notebook").strip().splitlines()[0],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": shape.request_schema}},
            }
        },
        responses=responses,
    )
    return {"path": path, "function": name, "kind": shape.kind, "batching": batching}


def create_app(folder: str | Path | None = None, settings: ServeSettings | None = None) -> FastAPI:
    """The service's app (``folder`` defaults to ``$MLNB_SERVICE_DIR``)."""
    folder = folder or os.environ.get("MLNB_SERVICE_DIR")
    if not folder:
        raise ServiceError("no service folder given: pass DIR or set MLNB_SERVICE_DIR.")
    settings = settings or ServeSettings.from_env()
    service = load_service(folder)
    metadata = service.metadata
    metrics = Metrics(service)
    # Swagger UI and ReDoc served from the package: /docs works without internet.
    app = FastAPIOffline(
        title=metadata.get("name", "mlnb service"),
        version=str(
            (metadata.get("models") or [{}])[0].get("version") or metadata.get("mlnb_version")
        ),
        description=f"Exported by mlnb from {metadata.get('notebook', {}).get('path')}.",
        default_response_class=JSONBytes,
    )
    app.state.service = service
    routes = [_add_endpoint(app, service, ep, settings, metrics) for ep in service.endpoints]
    app.state.routes = routes

    @app.get("/healthz", include_in_schema=True, tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> dict[str, Any]:
        """The models are loaded and the endpoints ready."""
        return {"status": "ready", "endpoints": [r["path"] for r in routes]}

    @app.get("/version", tags=["ops"])
    async def version() -> dict[str, Any]:
        """What is being served: the export metadata."""
        public = {k: v for k, v in metadata.items() if k != "example"}
        return {**public, "endpoints": routes}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, in-flight, errors, model, process RSS."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    known = {r["path"] for r in routes} | {"/healthz", "/readyz", "/version", "/metrics"}
    app.add_middleware(ServiceMiddleware, settings=settings, metrics=metrics, routes=known)
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

"""The HTTP side of an endpoint: the request validated, the answer (from the runtime) turned
into a response with the headers that say which model answered, and the audit record, which
is recorded before the response leaves (``MLNB_AUDIT_SYNC``; a 503 if it cannot be)."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from mlnb.serve._audit import AuditUnavailable
from mlnb.serve._metrics import Metrics
from mlnb.serve._runners import EndpointPlan
from mlnb.serve._runtime import NoFallback, Outcome, Runtime
from mlnb.serve._schemas import MAX_RECORDS, EndpointShape, too_many_records

__all__ = ["JSONBytes", "add_endpoint", "body_errors", "model_failure", "unavailable"]

log = logging.getLogger("mlnb.serve")


def unavailable(
    path: str, request_id: str | None, exc: Exception, metrics: Metrics, reason: str
) -> Response:
    """A 503 with ``Retry-After``: no answer could be given (no fallback) or recorded (the
    audit log), counted in ``mlnb_errors_total{reason}``."""
    metrics.errors.labels(path, reason).inc()
    return JSONBytes(
        {"detail": str(exc), "request_id": request_id},
        status_code=503,
        headers={"retry-after": "5"},
    )


def model_failure(path: str, request_id: str, exc: Exception, metrics: Metrics) -> Response:
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


class JSONBytes(JSONResponse):
    """JSON rendered by orjson (numpy values included); a JSONResponse, so FastAPI documents
    the response models of the routes that answer it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


async def _validated(request: Request, shape: EndpointShape) -> Any:
    """The request body parsed and validated in one step (strict pydantic, compiled once);
    a DataFrame body of too many records is refused before any record is built."""
    body = await request.body()
    if shape.kind == "dataframe" and (n := too_many_records(body)) is not None:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ("body", "records"),
                    "msg": f"records holds {n} rows, more than the {MAX_RECORDS} a request "
                    "may hold; send them in several requests",
                    "input": None,
                }
            ]
        )
    try:
        return shape.validate_body(body)
    except ValidationError as exc:
        raise body_errors(exc) from None


def body_errors(exc: ValidationError) -> RequestValidationError:
    """pydantic's errors with FastAPI's ``body`` prefix on each location."""
    errors = exc.errors(include_url=False)
    for error in errors:
        error["loc"] = ("body", *error.get("loc", ()))
    return RequestValidationError(errors)


_CLOCK: list[Any] = [0, ""]


def _now() -> str:
    """The current UTC time to the second, ISO 8601 (formatted once a second)."""
    second = int(time.time())
    if second != _CLOCK[0]:
        _CLOCK[0] = second
        _CLOCK[1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return str(_CLOCK[1])


def _answer_headers(outcome: Outcome) -> dict[str, str]:
    """Which model answered (the middleware adds X-Request-ID)."""
    model = outcome.slot.model
    headers = {
        "x-model-version": f"{model.get('name')}/{model.get('version')}",
        "x-model-role": outcome.role,
    }
    if outcome.fallback:
        headers["x-mlnb-fallback"] = outcome.fallback
        headers["x-model-version"] = "fallback"
    return headers


def _per_record(names_per_record: list[list[str]], what: str) -> list[str]:
    """One warning per record that has names: ``record I: WHAT: a, b``."""
    return [
        f"record {i}: {what}: {', '.join(names)}"
        for i, names in enumerate(names_per_record)
        if names
    ]


def add_endpoint(
    app: FastAPI, runtime: Runtime, plan: EndpointPlan, function: Any
) -> dict[str, Any]:
    shape = plan.shape
    path = plan.path
    name = function.__name__
    metrics = runtime.metrics
    quality = runtime.qualities.get(path)
    predictions_by_role = {
        role: metrics.predictions.labels(path, role)
        for role in ("champion", "challenger", "fallback")
    }

    async def respond(
        request: Request,
        body: Any,
        audit_inputs: Any,
        started: float,
        filled: Any = None,
        flagged: Any = None,
    ) -> Response:
        request_id = request.state.request_id
        client_id = request.headers.get("x-client-id")
        try:
            outcome = await runtime.answer(path, body, client_id)
        except NoFallback as exc:
            return unavailable(path, request_id, exc, metrics, "unavailable")
        except Exception as exc:
            return model_failure(path, request_id, exc, metrics)
        predictions_by_role[outcome.role].inc()
        headers = _answer_headers(outcome)
        result = outcome.result
        model = outcome.slot.model
        if shape.kind == "dataframe":
            doc: dict[str, Any] = {
                "predictions": result,
                "model": {"name": model.get("name"), "version": model.get("version")},
                "request_id": request_id,
            }
            warnings = []
            if filled is not None:
                doc["filled_fields"] = filled
                warnings += _per_record(filled, "filled from the training profile")
            if flagged is not None:
                doc["out_of_range"] = flagged
                warnings += _per_record(flagged, "far outside the training range")
            if warnings:
                doc["warnings"] = warnings
            if outcome.fallback:
                doc["fallback"] = True
                doc["fallback_reason"] = outcome.fallback
            response: Response = JSONBytes(doc, headers=headers)
        else:
            response = JSONBytes(result, headers=headers)
        shadowing = (
            runtime.router.shadowing and not outcome.fallback and outcome.slot.role == "champion"
        )
        audit = runtime.audit
        if audit is not None or shadowing:
            doc = {
                "kind": "prediction",
                "request_id": request_id,
                "time": _now(),
                "endpoint": path,
                "model": {
                    "name": model.get("name"),
                    "version": model.get("version"),
                    "role": outcome.slot.role,
                },
                "inputs": audit_inputs,
                "outputs": result,
                "fallback": bool(outcome.fallback),
                "fallback_reason": outcome.fallback,
                "shadow": shadowing,
                "filled_fields": filled,
                "out_of_range": flagged,
                "client_id": client_id,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            if audit is not None:
                try:
                    # the answer waits for its record (MLNB_AUDIT_SYNC): one write and one
                    # sync for all the requests waiting at that moment
                    await audit.commit(doc)
                except AuditUnavailable as exc:
                    return unavailable(path, request_id, exc, metrics, "audit")
                audit.remember(request_id, path, result)
            if shadowing:
                runtime.shadow(path, body, result, doc)
        return response

    if shape.kind == "dataframe":

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
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
            filled = flagged = None
            if quality is not None:
                filled, flagged = quality.apply(records)
                if filled is not None:
                    for names in filled:
                        for feature in names:
                            metrics.filled.labels(path, feature).inc()
                if flagged is not None:
                    for names in flagged:
                        for feature in names:
                            metrics.out_of_range.labels(path, feature).inc()
            if runtime.drift is not None:
                runtime.drift.observe(records)
            return await respond(request, records, records, started, filled, flagged)

    else:

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            payload = await _validated(request, shape)
            inputs = shape.request.dump_python(payload, mode="json")
            return await respond(request, payload, inputs, started)

    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"application/json": {"schema": shape.response_schema or {}}}},
        422: {"description": "The body does not match the schema (field-level errors)"},
        503: {
            "description": "The model is failing, its breaker is open and there is no "
            "fallback; or the audit record of the answer could not be written"
        },
    }
    app.add_api_route(
        path,
        handler,
        methods=["POST"],
        name=name,
        summary=(function.__doc__ or f"{name} from the notebook").strip().splitlines()[0],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": shape.request_schema}},
            }
        },
        responses=responses,
    )
    return {"path": path, "function": name, "kind": shape.kind, "batching": plan.batching}

"""What the service promises in its OpenAPI document, beyond the request bodies.

The probes and monitor pages answer pydantic models (their OpenAPI schemas are those
models, and FastAPI checks each answer against them). Every error the service can give has
one JSON shape, :class:`ErrorResponse`; :func:`document_errors` lists, on every operation,
each status it can answer: 401 when an API key is configured (the probes excepted), 413 and
415 on operations that take a body, 422 on those that validate one, and everywhere 503 (with
``Retry-After``: the worker at its connection limit, and on the endpoints a failing model
without fallback), 408 and 431 (request headers too slow or too large, ``_server``) and 500
(a failure inside the service, answered without a traceback); and the security schemes the
key can be sent with.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ERROR_SCHEMA",
    "DriftReport",
    "ErrorResponse",
    "FeedbackAnswer",
    "FeedbackSummary",
    "FieldError",
    "Health",
    "Readiness",
    "VersionInfo",
    "document_errors",
]


class FieldError(BaseModel):
    """One field of a refused body: where it is, what is wrong, pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error answer: what went wrong (a sentence, or the refused fields) and the
    request id to look the request up in the log."""

    detail: str | list[FieldError]
    request_id: str | None


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    endpoints: list[str]


class EndpointInfo(BaseModel):
    path: str
    function: str
    kind: Literal["dataframe", "typed"]
    batching: bool


class ProfileInfo(BaseModel):
    name: str | None
    error: str | None
    features: dict[str, dict[str, Any]]


class VersionInfo(BaseModel):
    """The export metadata (``mlnb-service.json`` without the example) and what is serving."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    models: list[dict[str, Any]] = []
    endpoints: list[EndpointInfo]
    serving: dict[str, Any]
    breakers: dict[str, dict[str, Any]]
    fallbacks: dict[str, str | None]
    profile: ProfileInfo
    audit: str | None
    follow: dict[str, Any] | None


class DriftReport(BaseModel):
    """The last drift check of the rolling window of live inputs."""

    model_config = ConfigDict(extra="allow")

    profile: str | None
    n: int
    features: dict[str, dict[str, Any]]
    drifted: list[str]
    checked_at: str | None
    detail: str | None = None


class Accuracy(BaseModel):
    labelled: int
    correct: int
    accuracy: float


class FeedbackSummary(BaseModel):
    """Live accuracy per endpoint, from the labels sent to POST /feedback."""

    endpoints: dict[str, Accuracy]
    detail: str | None = None


class FeedbackAnswer(FeedbackSummary):
    request_id: str
    correct: int
    n: int


_REF = "#/components/schemas/ErrorResponse"
ERROR_SCHEMA: dict[str, Any] = {"$ref": _REF}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }
    if headers:
        doc["headers"] = headers
    return doc


def document_errors(
    schema: dict[str, Any],
    *,
    endpoints: set[str],
    open_paths: set[str],
    keyed: bool,
    max_body_bytes: int,
) -> None:
    """Add to ``schema`` (FastAPI's OpenAPI document) the error answers of each operation,
    the error schema and, when ``keyed``, the API key's security schemes."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    schemas.pop("HTTPValidationError", None)  # FastAPI's default 422, replaced below
    schemas.pop("ValidationError", None)
    if keyed:
        components["securitySchemes"] = {
            "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "HTTPBearer": {"type": "http", "scheme": "bearer"},
        }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if method == "head":
                continue  # a HEAD answer has no body: its status only
            if keyed and path not in open_paths:
                operation["security"] = [{"APIKeyHeader": []}, {"HTTPBearer": []}]
                responses["401"] = _error("Missing or wrong API key")
            if method in ("post", "put", "patch"):
                responses["413"] = _error(f"The request body is larger than {max_body_bytes} bytes")
                responses["415"] = _error("The body is not sent as application/json")
                responses["422"] = _error(
                    responses.get("422", {}).get("description")
                    or "The body does not match the schema (the refused fields are listed)"
                )
            full = "The service is at its connection limit"
            responses["503"] = _error(
                f"{full}, or the model is failing, its breaker is open and there is no fallback"
                if path in endpoints
                else full,
                _RETRY_AFTER,
            )
            responses["408"] = _error("The request headers did not arrive in time")
            responses["431"] = _error("The request headers are larger than 64 KiB")
            responses["500"] = _error(
                "A failure inside the service (no traceback; see the log for the request id)"
            )

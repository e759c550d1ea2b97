"""Request and response shapes of an endpoint, from its type hints or the notebook's example.

A DataFrame endpoint (its parameter is a ``pandas.DataFrame``) takes
``{"records": [{column: value, ...}, ...]}`` with the columns and types of the example; extra
columns, wrong types, NaN and infinities are refused field by field. Which fields may be left
out or null comes from the training profile (:class:`FieldRules`, built by ``_quality``), not
from the example: the example decides only for columns the profile does not cover (required,
nullable when the example has a null there).

Date-times (ISO 8601, naive and with offsets mixed in one request) are normalised to the
training data's convention, as each field's OpenAPI description says: to UTC without zone
when the training column has no zone (a time without an offset is taken as UTC as it is), to
the training column's zone when it has one (a time without an offset is taken as UTC). The
convention is the profile's dtype for a profiled column, else the example's.

Any other endpoint takes a JSON body shaped by its parameters' type hints (pydantic models,
TypedDicts, primitives).

Bodies are validated strictly (:data:`STRICT`): a number field takes JSON numbers only (an
integer is a number; ``"12"`` and ``true`` are not), an integer field JSON integers only, a
boolean ``true``/``false``; a pydantic model whose ``model_config`` sets ``strict`` itself is
validated as it says. Numbers are finite and, where the service builds the field (DataFrame
columns, ``float``/``int`` parameters), within the range the schema states as ``minimum`` and
``maximum``: float32's for numbers (the models' arithmetic, often float32, overflows beyond
it) and int64's for integers (a DataFrame column's dtype). A DataFrame body holds 1 to
:data:`MAX_RECORDS` records; :func:`too_many_records` counts them before any record is built.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    with_config,
)
from typing_extensions import NotRequired, TypedDict

__all__ = [
    "MAX_RECORDS",
    "STRICT",
    "DataFrameSchema",
    "EndpointShape",
    "FieldRules",
    "column_zone",
    "dataframe_schema_from_example",
    "example_records",
    "normalise_datetime",
    "shape_of",
    "too_many_records",
]

MAX_RECORDS = 10_000
#: bodies are validated strictly unless a user's pydantic model configures ``strict`` itself
STRICT = True
FLOAT32_MAX = 3.4028234663852886e38
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NUMBER = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX, allow_inf_nan=False)]
_INTEGER = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]

_PY_TYPES: dict[str, Any] = {
    "float": _NUMBER,
    "int": _INTEGER,
    "bool": bool,
    "str": str,
    "datetime": datetime,
}


def _kind(dtype: str) -> str:
    dtype = dtype.lower()
    if dtype.startswith(("float", "double")):
        return "float"
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype.startswith("bool"):
        return "bool"
    if dtype.startswith("datetime"):
        return "datetime"
    return "str"


@dataclass(frozen=True)
class DataFrameSchema:
    columns: list[dict[str, Any]]  # {"name", "dtype", "type", "nullable"}

    def to_json(self) -> dict[str, Any]:
        return {"kind": "dataframe", "columns": self.columns}

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]


def dataframe_schema_from_example(example: Any) -> DataFrameSchema:
    """Columns, dtypes and nullability of a DataFrame (or records) example."""
    import pandas as pd

    frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(_records(example))
    columns = []
    for name, dtype in frame.dtypes.items():
        kind = _kind(str(dtype))
        if kind == "str" and str(dtype) == "object":
            values = frame[name].dropna()
            if len(values) and all(isinstance(v, bool) for v in values):
                kind = "bool"
        columns.append(
            {
                "name": str(name),
                "dtype": str(dtype),
                "type": kind,
                "nullable": bool(frame[name].isna().any()),
            }
        )
    return DataFrameSchema(columns)


def _records(example: Any) -> list[dict[str, Any]]:
    if isinstance(example, dict):
        return [example]
    if isinstance(example, list) and all(isinstance(r, dict) for r in example):
        return example
    raise TypeError("example must be a DataFrame, a dict or a list of dicts")


def example_records(example: Any) -> list[dict[str, Any]]:
    """The example as JSON-ready records (NaN -> None)."""
    import pandas as pd

    if isinstance(example, pd.DataFrame):
        frame = example.astype(object).where(example.notna(), None)
        return [
            {
                str(k): (v.isoformat() if isinstance(v, (pd.Timestamp, datetime)) else v)
                for k, v in r.items()
            }
            for r in frame.to_dict(orient="records")
        ]
    return _records(example)


@dataclass
class EndpointShape:
    kind: str  # "dataframe" or "typed"
    request: TypeAdapter[Any]
    request_schema: dict[str, Any]
    response_schema: dict[str, Any] | None
    columns: list[str]
    dtypes: dict[str, str]
    params: list[str]  # typed endpoints: parameter names (single model param: [])
    single_model: bool
    returns: TypeAdapter[Any] | None
    fits_example: bool = False  # the notebook's example is a valid body for this endpoint
    strict: bool | None = STRICT  # None: as the user's model configures it

    def validate_body(self, body: bytes) -> Any:
        """The JSON body parsed and validated in one step (raises pydantic's
        ValidationError)."""
        return self.request.validate_json(body, strict=self.strict)


@dataclass(frozen=True)
class FieldRules:
    """What the training profile says of a DataFrame endpoint's fields."""

    optional: frozenset[str] = frozenset()  # may be left out or null
    notes: Mapping[str, str] = field(default_factory=dict)  # the OpenAPI description
    datetime_dtypes: Mapping[str, str] = field(default_factory=dict)  # the training dtype


def column_zone(dtype: str) -> tzinfo | None:
    """The time zone of a pandas datetime dtype (``datetime64[ns, UTC]``); None when naive."""
    import pandas as pd

    try:
        zone = getattr(pd.api.types.pandas_dtype(dtype), "tz", None)
    except TypeError:
        return None
    return zone if isinstance(zone, tzinfo) else None


def normalise_datetime(value: datetime, zone: tzinfo | None) -> datetime:
    """``value`` in the convention of a column of ``zone``: naive UTC when ``zone`` is None
    (a naive value is taken as UTC, as it is), else converted to ``zone`` (a naive value is
    taken as UTC)."""
    aware = value.utcoffset() is not None
    if zone is None:
        return value.astimezone(timezone.utc).replace(tzinfo=None) if aware else value
    return (value if aware else value.replace(tzinfo=timezone.utc)).astimezone(zone)


def _datetime_note(zone: tzinfo | None) -> str:
    if zone is None:
        return (
            "ISO 8601 date-time. A time with a UTC offset is converted to UTC and passed "
            "without zone, as the training data's times are; a time without an offset is "
            "taken as UTC."
        )
    return (
        f"ISO 8601 date-time, converted to {zone} (the training data's zone); a time "
        "without an offset is taken as UTC."
    )


def _field_type(column: dict[str, Any], rules: FieldRules) -> Any:
    name = column["name"]
    kind: Any = _PY_TYPES[column["type"]]
    notes = []
    if column["type"] == "datetime":
        zone = column_zone(rules.datetime_dtypes.get(name, column["dtype"]))
        kind = Annotated[kind, AfterValidator(functools.partial(normalise_datetime, zone=zone))]
        notes.append(_datetime_note(zone))
    if name in rules.optional:
        notes.append(rules.notes.get(name, "May be left out or null."))
    elif column["nullable"]:
        notes.append("May be null.")
    if name in rules.optional or column["nullable"]:
        kind = kind | None
    if notes:
        kind = Annotated[kind, Field(description=" ".join(notes))]
    return NotRequired[kind] if name in rules.optional else kind


def _record_type(schema: DataFrameSchema, name: str, rules: FieldRules) -> Any:
    fields = {column["name"]: _field_type(column, rules) for column in schema.columns}
    record = TypedDict(f"{name}Record", fields)  # type: ignore[misc,operator]
    return with_config(ConfigDict(extra="forbid", allow_inf_nan=False, title=f"{name}Record"))(
        record
    )


def _dataframe_shape(
    schema: DataFrameSchema, name: str, example: Any, rules: FieldRules | None = None
) -> EndpointShape:
    record = _record_type(schema, name, rules or FieldRules())
    records = Annotated[list[record], Field(max_length=MAX_RECORDS)]  # type: ignore[valid-type]
    request_type = with_config(ConfigDict(extra="forbid", title=f"{name}Request"))(
        TypedDict(f"{name}Request", {"records": records})  # type: ignore[misc,operator]
    )
    adapter: TypeAdapter[Any] = TypeAdapter(request_type)
    request_schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    # an empty list is refused by the handler, with a sentence saying so
    request_schema.setdefault("properties", {}).setdefault("records", {})["minItems"] = 1
    response_schema = {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": {}},
            "model": {
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"]},
                    "version": {"type": ["string", "null"]},
                },
            },
            "request_id": {"type": "string"},
            "filled_fields": {
                "description": "per record, the features filled from the training profile "
                "(only when one was)",
                "type": "array",
                "items": {"type": "array", "items": {"type": "string"}},
            },
            "out_of_range": {
                "description": "per record, the features far outside the training range "
                "(only when one was)",
                "type": "array",
                "items": {"type": "array", "items": {"type": "string"}},
            },
            "warnings": {"type": "array", "items": {"type": "string"}},
            "fallback": {
                "description": "true when the fallback answered (only then)",
                "type": "boolean",
            },
            "fallback_reason": {"type": "string"},
        },
        "required": ["predictions", "model", "request_id"],
    }
    if example is not None:
        request_schema["example"] = {"records": example_records(example)}
    return EndpointShape(
        fits_example=example is not None,
        kind="dataframe",
        request=adapter,
        request_schema=request_schema,
        response_schema=response_schema,
        columns=schema.names,
        dtypes={c["name"]: c["dtype"] for c in schema.columns},
        params=[],
        single_model=False,
        returns=None,
    )


#: a plain ``float``/``int`` parameter of a typed endpoint, bounded as DataFrame columns are
_BOUNDED: dict[Any, Any] = {
    float: _NUMBER,
    int: _INTEGER,
    float | None: _NUMBER | None,
    int | None: _INTEGER | None,
}


def _bounded(annotation: Any) -> Any:
    try:
        return _BOUNDED.get(annotation, annotation)
    except TypeError:  # an unhashable annotation (Annotated with a list, ...): as it is
        return annotation


def too_many_records(body: bytes) -> int | None:
    """How many records a DataFrame body holds when that is more than :data:`MAX_RECORDS`
    (else None), counted on the parsed JSON before a record is validated or built; bodies
    too short to hold that many are not parsed twice."""
    if len(body) < 3 * MAX_RECORDS:  # each record takes at least 3 bytes: ``{},``
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # validation says what is wrong with it
    records = doc.get("records") if isinstance(doc, dict) else None
    if isinstance(records, list) and len(records) > MAX_RECORDS:
        return len(records)
    return None


def _is_dataframe_type(annotation: Any) -> bool:
    return getattr(annotation, "__name__", "") == "DataFrame" and "pandas" in getattr(
        annotation, "__module__", ""
    )


def shape_of(
    function: Any,
    namespace: dict[str, Any],
    example: Any,
    dataframe_schema: dict[str, Any] | None,
    rules: FieldRules | None = None,
) -> EndpointShape:
    """How ``function`` is called over HTTP (raises TypeError with the reason when it can't
    be); ``rules`` are the training profile's word on a DataFrame endpoint's fields."""
    name = "".join(part.capitalize() for part in function.__name__.split("_")) or "Endpoint"
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, globalns=namespace)
    except Exception as exc:
        raise TypeError(f"the type hints of {function.__name__} cannot be resolved: {exc}") from exc
    params = [
        p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    annotations = {p.name: hints.get(p.name, inspect.Parameter.empty) for p in params}
    is_frame = len(params) == 1 and _is_dataframe_type(annotations[params[0].name])
    untyped = all(a is inspect.Parameter.empty for a in annotations.values())
    if is_frame or (untyped and len(params) == 1 and (example is not None or dataframe_schema)):
        if dataframe_schema is not None:
            schema = DataFrameSchema(dataframe_schema["columns"])
        elif example is not None:
            schema = dataframe_schema_from_example(example)
        else:
            raise TypeError(
                f"{function.__name__} takes a DataFrame but there is no mlnb:example cell to "
                "learn its columns from; add a cell tagged mlnb:example that sets `example`."
            )
        return _dataframe_shape(schema, name, example, rules)
    if untyped and params:
        raise TypeError(
            f"{function.__name__} has no type hints and there is no example: annotate its "
            "parameters (e.g. `df: pd.DataFrame`, a pydantic model, or int/str/float) or add "
            "a cell tagged mlnb:example."
        )
    returns_hint = hints.get("return")
    returns: TypeAdapter[Any] | None = None
    if returns_hint not in (None, type(None)):
        returns = TypeAdapter(returns_hint)  # type: ignore[arg-type]
    first = annotations[params[0].name] if len(params) == 1 else None
    strict: bool | None = STRICT
    if isinstance(first, type) and issubclass(first, BaseModel):
        adapter: TypeAdapter[Any] = TypeAdapter(first)
        single = True
        if "strict" in first.model_config:
            strict = None  # the model says how strict it is
    else:
        fields = {}
        for p in params:
            annotation = annotations[p.name]
            if annotation is inspect.Parameter.empty:
                annotation = Any
            annotation = _bounded(annotation)
            fields[p.name] = (annotation, ... if p.default is p.empty else p.default)
        model = create_model(  # type: ignore[call-overload]
            f"{name}Request", __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields
        )
        adapter = TypeAdapter(model)
        single = False
    request_schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    fits = False
    if isinstance(example, dict):
        try:  # a valid body: as JSON, validated as requests are
            adapter.validate_json(orjson.dumps(example), strict=strict)
            fits = True
            request_schema["example"] = example
        except (ValueError, TypeError):  # orjson.JSONEncodeError is a TypeError
            fits = False
    return EndpointShape(
        fits_example=fits,
        kind="typed",
        request=adapter,
        request_schema=request_schema,
        response_schema=returns.json_schema(ref_template="#/components/schemas/{model}")
        if returns
        else None,
        columns=[],
        dtypes={},
        params=[p.name for p in params],
        single_model=single,
        returns=returns,
        strict=strict,
    )

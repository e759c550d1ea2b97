"""The request contract comes from the training profile, not from the notebook's example:
the same notebook exported with an example that has nulls and with one that has none gives
the same contract; date-times naive and with offsets are accepted in one request and
normalised as the OpenAPI schema says. The OpenAPI document is the behaviour: strict
numbers, finite bounds, the record count and every status as documented, and schemathesis
``--checks all`` finds nothing (real `mlnb serve` processes on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import Safe
from tests.serving import RunningService, code, project_at, running_service, write_notebook

PREDICT = code(
    "import pandas as pd\n\n"
    "def predict(df: pd.DataFrame) -> list[dict]:\n"
    '    """What the model is given, row by row."""\n'
    "    return [\n"
    "        {\n"
    "            'age': None if pd.isna(r.age) else r.age,\n"
    "            'income': r.income,\n"
    "            'city': r.city,\n"
    "            'height': r.height,\n"
    "            'when': r.when.isoformat(),\n"
    "            'when_dtype': str(df['when'].dtype),\n"
    "        }\n"
    "        for r in df.itertuples()\n"
    "    ]",
    "mlnb:export",
)
WITH_NULLS = (
    "import pandas as pd\nexample = pd.DataFrame({'age': [None, 35.0], 'income': [12.0, None], "
    "'city': ['lyon', None], 'height': [None, 180.0], "
    "'when': pd.to_datetime(['2024-03-01 08:00', None])})"
)
WITHOUT_NULLS = (
    "import pandas as pd\nexample = pd.DataFrame({'age': [41.0, 35.0], 'income': [12.0, 15.0], "
    "'city': ['lyon', 'nice'], 'height': [150.0, 180.0], "
    "'when': pd.to_datetime(['2024-03-01 08:00', '2024-03-02 09:30'])})"
)


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, RunningService]]:
    """The same notebook exported twice with the same profile: its example with nulls, and
    without; both served."""
    import pandas as pd

    from mlnb.export import export_notebook
    from mlnb.monitor import profile

    base = tmp_path_factory.mktemp("contract")
    with project_at(base / "project") as root:
        training = pd.DataFrame(
            {
                "age": [30.0, None, 50.0, 40.0],  # missing in training: reaches the model
                "income": [10.0, 20.0, 30.0, 40.0],  # never missing: the median fills it
                "city": ["paris", "lyon", "paris", "nice"],  # the most frequent fills it
                "height": [150.0, None, 170.0, 160.0],  # missing, but a declared default
                "when": pd.to_datetime(["2024-03-01 10:00"] * 3 + ["2024-03-02 11:00"]),
            }
        )
        people = profile(training, name="people", defaults={"height": 165.0}, log=False)
        profile_path = people.save(root / "people.json")
        running: dict[str, RunningService] = {}
        with contextlib.ExitStack() as stack:
            for name, example in (("nulls", WITH_NULLS), ("no-nulls", WITHOUT_NULLS)):
                notebook = write_notebook(
                    root / f"{name}.ipynb", PREDICT, code(example, "mlnb:example")
                )
                export_notebook(notebook, root / name, verify=False, profile=profile_path)
                running[name] = stack.enter_context(
                    running_service(root / name, base / f"{name}.log", MLNB_AUDIT="off")
                )
            yield running


def _record_schema(service: RunningService) -> dict[str, Any]:
    with service.client() as http:
        spec = http.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["properties"]["records"]["items"]["$ref"]
    record: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return record


def _post(service: RunningService, records: list[dict[str, Any]]) -> Any:
    with service.client() as http:
        return http.post("/predict", json={"records": records})


def test_an_example_with_nulls_gives_the_same_contract_as_one_without(
    services: dict[str, RunningService],
) -> None:
    schemas = {name: _record_schema(service) for name, service in services.items()}
    assert schemas["nulls"] == schemas["no-nulls"]
    record = schemas["nulls"]
    assert record.get("required", []) == []  # every field is profiled
    notes = {name: field.get("description", "") for name, field in record["properties"].items()}
    assert "reaches the model as missing, as in 25.0% of the training rows" in notes["age"]
    assert "filled with 25.0 (the training median)" in notes["income"]
    assert "filled with 'paris' (the most frequent training value)" in notes["city"]
    assert "filled with 165.0 (the declared default)" in notes["height"]
    answers = {}
    for name, service in services.items():
        left_out = _post(service, [{}, {k: None for k in record["properties"]}])
        assert left_out.status_code == 200, left_out.text
        answers[name] = {k: v for k, v in left_out.json().items() if k != "request_id"}
    assert answers["nulls"] == answers["no-nulls"]
    seen = answers["nulls"]["predictions"]
    assert seen[0] == seen[1]
    assert {k: v for k, v in seen[0].items() if k != "when_dtype"} == {
        "age": None,  # as in training: missing values reach the model
        "income": 25.0,
        "city": "paris",
        "height": 165.0,
        "when": "2024-03-01T10:00:00",
    }
    filled = ["income", "city", "height", "when"]
    assert answers["nulls"]["filled_fields"] == [filled, filled]


def test_wrong_types_are_still_refused_field_by_field(
    services: dict[str, RunningService],
) -> None:
    for service in services.values():
        answer = _post(service, [{"income": "a lot"}])
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "records", 0, "income"]


def test_naive_and_aware_datetimes_in_one_request_are_normalised_to_utc_naive(
    services: dict[str, RunningService],
) -> None:
    service = services["no-nulls"]
    note = _record_schema(service)["properties"]["when"]["description"]
    assert "A time with a UTC offset is converted to UTC and passed without zone" in note
    assert "a time without an offset is taken as UTC" in note
    spelled = [
        "2024-03-01T10:00:00",
        "2024-03-01T12:00:00+02:00",
        "2024-03-01T10:00:00Z",
        "2024-03-01T05:00:00-05:00",
    ]
    answer = _post(service, [{"when": when} for when in spelled])
    assert answer.status_code == 200, answer.text
    seen = answer.json()["predictions"]
    assert [row["when"] for row in seen] == ["2024-03-01T10:00:00"] * 4
    assert seen[0]["when_dtype"].startswith("datetime64[") and "," not in seen[0]["when_dtype"]


def test_a_zoned_training_column_converts_to_its_zone() -> None:
    """The other convention, checked on the request type alone: a training column with a zone
    receives every time in that zone (naive ones taken as UTC)."""
    import pandas as pd

    from mlnb.serve._schemas import FieldRules, column_zone, normalise_datetime, shape_of

    def predict(df: pd.DataFrame) -> list[int]:
        return [0] * len(df)

    example = pd.DataFrame({"when": pd.to_datetime(["2024-03-01 10:00"])})
    zoned = FieldRules(datetime_dtypes={"when": "datetime64[ns, Europe/Paris]"})
    shape = shape_of(predict, {"pd": pd}, example, None, zoned)
    body = {"records": [{"when": "2024-03-01T10:00:00"}, {"when": "2024-03-01T12:00:00+02:00"}]}
    records = shape.request.validate_json(json.dumps(body))["records"]
    paris = column_zone("datetime64[ns, Europe/Paris]")
    assert [r["when"] for r in records] == [datetime(2024, 3, 1, 11, 0, tzinfo=paris)] * 2
    assert str(records[0]["when"].tzinfo) == "Europe/Paris"
    assert column_zone("datetime64[us]") is None
    plus_two = datetime(2024, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert normalise_datetime(plus_two, None) == datetime(2024, 3, 1, 10)


def test_profiles_saved_before_default_declared_existed_still_load(tmp_path: Path) -> None:
    """Profiles saved before ``default_declared`` existed still load: their defaults count as
    computed (filled only where training had no missing values)."""
    from mlnb.monitor import Profile, profile
    from mlnb.serve._quality import Quality

    saved = profile({"a": [1.0, None, 3.0], "b": [1.0, 2.0, 3.0]}, log=False).to_dict()
    for feature in saved["features"].values():
        feature.pop("default_declared")
    (tmp_path / "old.json").write_text(json.dumps(saved))
    quality = Quality(
        Profile.load(tmp_path / "old.json"),
        [{"name": "a", "type": "float", "dtype": "float64"}, {"name": "b", "type": "float"}],
    )
    assert quality.defaults == {"b": 2.0} and quality.missing == {"a": pytest.approx(1 / 3)}
    assert quality.optional == {"a", "b"}


# -- the OpenAPI document is the behaviour (strict numbers, bounds, sizes, statuses) --------
KEY = "contract-key"
FUZZ_EXAMPLES = 15


@pytest.fixture(scope="module")
def keyed(safe: Safe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The conftest service (DataFrame endpoints with a profile, the typed /double) under
    `mlnb serve` with an API key."""
    logs = tmp_path_factory.mktemp("keyed")
    with running_service(
        safe.folder, logs / "service.log", MLNB_API_KEY=KEY, MLNB_AUDIT_DIR=str(logs / "audit")
    ) as running:
        yield running


def _call(service: RunningService, path: str, body: Any, **headers: str) -> Any:
    with service.client(headers={"x-api-key": KEY, **headers}) as http:
        return http.post(path, content=json.dumps(body, allow_nan=True))


def _json_call(service: RunningService, path: str, body: Any) -> Any:
    return _call(service, path, body, **{"content-type": "application/json"})


def _field_errors(answer: Any) -> list[tuple[list[Any], str]]:
    assert answer.status_code == 422, answer.text
    return [(d["loc"], d["type"]) for d in answer.json()["detail"]]


def test_numbers_are_strict_and_integers_count_as_numbers(
    keyed: RunningService, safe: Safe
) -> None:
    where = ["body", "records", 0, "mean radius"]
    for sent in ("12", "17.99", True):
        answer = _json_call(keyed, "/predict", safe.body(1, **{"mean radius": sent}))
        assert (where, "float_type") in _field_errors(answer), sent
    whole = _json_call(keyed, "/predict", safe.body(1, **{"mean radius": 18}))
    assert whole.status_code == 200, whole.text  # JSON users write 18 for 18.0
    for sent in ("2", True, [2]):
        answer = _json_call(keyed, "/double", {"x": sent})
        assert (["body", "x"], "float_type") in _field_errors(answer), sent
    assert _json_call(keyed, "/double", {"x": 2}).json() == 4.0


def test_huge_and_non_finite_numbers_are_refused_before_the_model(
    keyed: RunningService, safe: Safe
) -> None:
    from mlnb.serve._schemas import FLOAT32_MAX

    where = ["body", "records", 0, "mean area"]
    for sent, kind in ((1.7976931348623157e308, "less_than_equal"), (-1e39, "greater_than_equal")):
        answer = _json_call(keyed, "/predict", safe.body(1, **{"mean area": sent}))
        assert (where, kind) in _field_errors(answer)
        assert "the model refused" not in answer.text
    for literal in ("Infinity", "-Infinity", "NaN", "1e400"):
        raw = json.dumps(safe.body(1, **{"mean area": 123456.789})).replace("123456.789", literal)
        with keyed.client(headers={"x-api-key": KEY, "content-type": "application/json"}) as http:
            answer = http.post("/predict", content=raw)
        assert (where, "finite_number") in _field_errors(answer), literal
    at_bound = _json_call(keyed, "/predict", safe.body(2, **{"mean area": FLOAT32_MAX}))
    assert at_bound.status_code == 200, at_bound.text  # what validation lets in, the model takes
    assert (["body", "x"], "less_than_equal") in _field_errors(
        _json_call(keyed, "/double", {"x": 1e300})
    )
    with keyed.client(headers={"x-api-key": KEY}) as http:
        spec = http.get("/openapi.json").json()
    field = spec["components"]["schemas"]["PredictRecord"]["properties"]["mean area"]
    number = next(t for t in field["anyOf"] if t["type"] == "number")  # or null: profiled
    assert (number["minimum"], number["maximum"]) == (-FLOAT32_MAX, FLOAT32_MAX)
    x = spec["paths"]["/double"]["post"]["requestBody"]["content"]["application/json"]
    assert x["schema"]["properties"]["x"]["maximum"] == FLOAT32_MAX


def test_too_many_records_are_refused_as_documented(keyed: RunningService) -> None:
    from mlnb.serve._schemas import MAX_RECORDS

    with keyed.client(headers={"x-api-key": KEY}) as http:
        spec = http.get("/openapi.json").json()
        too_many = http.post("/predict", json={"records": [{}] * (MAX_RECORDS + 1)})
        at_most = http.post("/predict", json={"records": [{}] * MAX_RECORDS})
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    records = schema["schema"]["properties"]["records"]
    assert (records["minItems"], records["maxItems"]) == (1, MAX_RECORDS)
    assert _field_errors(too_many) == [(["body", "records"], "too_long")]
    assert f"holds {MAX_RECORDS + 1} rows, more than the {MAX_RECORDS}" in too_many.text
    assert at_most.status_code == 200, at_most.text  # every field filled from the profile
    assert len(at_most.json()["predictions"]) == MAX_RECORDS


def test_every_status_answered_is_documented_with_the_error_schema(
    keyed: RunningService, safe: Safe
) -> None:
    with keyed.client(headers={"x-api-key": KEY}) as http:
        spec = http.get("/openapi.json").json()
    operations = spec["paths"]
    predict = operations["/predict"]["post"]["responses"]
    assert set(predict) == {"200", "401", "408", "413", "415", "422", "431", "500", "503"}
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in ("401", "408", "413", "415", "422", "431", "500", "503"):
        assert predict[status]["content"]["application/json"]["schema"] == error, status
    assert "Retry-After" in predict["503"]["headers"]
    assert {"401", "404", "409", "413", "415", "422"} <= set(
        operations["/feedback"]["post"]["responses"]
    )
    assert "401" not in operations["/healthz"]["get"]["responses"]  # probes are open
    assert {"401", "503"} <= set(operations["/version"]["get"]["responses"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    probes = {
        "/healthz": "Health",
        "/readyz": "Readiness",
        "/version": "VersionInfo",
        "/monitor/drift": "DriftReport",
        "/monitor/feedback": "FeedbackSummary",
    }
    for path, model in probes.items():
        schema = operations[path]["get"]["responses"]["200"]["content"]["application/json"]
        assert schema["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
    # and each of these is what the service answers
    with keyed.client() as http:
        no_key = http.post("/predict", json=safe.body())
        as_text = http.post(
            "/predict", content=b"{}", headers={"x-api-key": KEY, "content-type": "text/plain"}
        )
        wrong = http.post("/predict", json={"records": 1}, headers={"x-api-key": KEY})
        put = http.put("/predict", headers={"x-api-key": KEY})
        health = http.get("/healthz").json()
    with keyed.client() as http:  # its own connection: the unread body stays on it
        too_big = http.post(
            "/predict",
            content=b" " * (2 << 20),
            headers={"x-api-key": KEY, "content-type": "application/json"},
        )
    for answer, status in ((no_key, 401), (as_text, 415), (too_big, 413), (wrong, 422)):
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"detail", "request_id"}, answer.text
    # an undeclared method is a 405 (with Allow), not a 415 for its missing body
    assert put.status_code == 405 and put.headers["allow"] == "POST"
    assert health == {"status": "ok"}


def test_a_model_that_configures_strict_itself_is_validated_as_it_says() -> None:
    from pydantic import BaseModel, ConfigDict, ValidationError

    from mlnb.serve import shape_of

    class Lax(BaseModel):
        model_config = ConfigDict(strict=False)
        x: float

    class Plain(BaseModel):
        x: float

    def lax(body: Lax) -> float:
        return body.x

    def plain(body: Plain) -> float:
        return body.x

    assert shape_of(lax, {"Lax": Lax}, None, None).validate_body(b'{"x": "12"}').x == 12.0
    shape = shape_of(plain, {"Plain": Plain}, None, None)
    with pytest.raises(ValidationError, match="Input should be a valid number"):
        shape.validate_body(b'{"x": "12"}')
    assert shape.validate_body(b'{"x": 12}').x == 12.0


def test_schemathesis_all_checks_find_no_failure(keyed: RunningService, tmp_path: Path) -> None:
    """schemathesis ``--checks all`` (every phase: examples, coverage, fuzzing;
    deterministic, :data:`FUZZ_EXAMPLES` cases per operation) against the keyed service, so
    the 401s and the ``ignored_auth`` check are part of it. Last in this module: it posts
    whatever the contract allows. The full run (500 examples per operation, with and without
    a key) is ``python -m benchmarks contract``."""
    from benchmarks.contract import schemathesis_run

    result = schemathesis_run(keyed.url, tmp_path, examples=FUZZ_EXAMPLES, api_key=KEY)
    found = f"schemathesis found problems:\n{result['output']}"
    assert result["failures"] == [] and result["errors"] == [], found
    assert result["exit_code"] == 0 and result["returncode"] == 0, found
    # every operation was reached, each phase ran, and cases were checked
    operations = result["operations"]
    assert operations["tested"] == operations["total"] >= 12, operations
    phases = {p: v["status"] for p, v in result["phases"].items() if p != "stateful"}
    assert phases == {"examples": "success", "coverage": "success", "fuzzing": "success"}
    assert result["test_cases"]["generated"] > 100, result["test_cases"]

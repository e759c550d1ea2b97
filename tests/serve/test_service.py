"""A real exported service under `mlnb serve` (uvicorn on 127.0.0.1), called over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mlnb.export import export_notebook
from tests.serving import (
    SERVE_CELLS,
    RunningService,
    code,
    registered_project,
    running_service,
    write_notebook,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with registered_project(tmp_path_factory.mktemp("serve") / "project") as root:
        notebook = write_notebook(
            root / "serve.ipynb",
            *SERVE_CELLS[:3],
            code(
                "import pandas as pd\nfrom sklearn.datasets import load_breast_cancer\n"
                "example = load_breast_cancer(as_frame=True).data.head(3)\n"
                "example_checked = pd.DataFrame({'x': [1.0, 2.0]})  # for /checked",
                "mlnb:example",
            ),
            *SERVE_CELLS[4:],
            code(
                "@mlnb.endpoint('/checked')\n"
                "def checked(df: pd.DataFrame) -> list[float]:\n"
                "    if (df['x'] < 0).any():\n"
                "        raise ValueError('x must not be negative')\n"
                "    if (df['x'] == 13).any():\n"
                "        raise RuntimeError('an internal failure')\n"
                "    return (df['x'] * 2).tolist()",
                "mlnb:export",
            ),
        )
        export_notebook(notebook, root / "svc", verify=False)
        yield root / "svc"


@pytest.fixture(scope="module")
def service(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    log = tmp_path_factory.mktemp("logs") / "service.log"
    with running_service(exported, log) as running:
        yield running


def _example(folder: Path) -> dict[str, list[dict[str, float]]]:
    return json.loads((folder / "example.json").read_text())


def test_predict_answers_with_model_and_request_id(service: RunningService, exported: Path) -> None:
    with service.client() as client:
        answer = client.post(
            "/predict", json=_example(exported), headers={"X-Request-ID": "abc-123"}
        )
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "abc-123"
        assert answer.json() == {
            "predictions": [0, 0, 0],
            "model": {"name": "bc", "version": "1"},
            "request_id": "abc-123",
        }
        generated = client.post("/predict", json=_example(exported))
        rid = generated.headers["x-request-id"]
        assert len(rid) == 32 and generated.json()["request_id"] == rid
    logged = [json.loads(line) for line in service.log_lines() if line.startswith("{")]
    hit = [entry for entry in logged if entry.get("request_id") == "abc-123"]
    assert hit and hit[0]["path"] == "/predict" and hit[0]["status"] == 200
    assert all("request_id" in entry for entry in logged)


def _bad(record_change: dict[str, object], drop: str | None = None) -> dict[str, object]:
    record: dict[str, object] = {"mean radius": 17.99}
    return {"change": record_change, "drop": drop, "base": record}


@pytest.mark.parametrize(
    ("mutate", "loc", "kind"),
    [
        (
            lambda r: r.update({"mean radius": "big"}),
            ["body", "records", 0, "mean radius"],
            "float_type",  # strict: a string is not a number, even "12"
        ),
        (lambda r: r.pop("mean texture"), ["body", "records", 0, "mean texture"], "missing"),
        (
            lambda r: r.update({"surprise": 1}),
            ["body", "records", 0, "surprise"],
            "extra_forbidden",
        ),
        (
            lambda r: r.update({"mean area": math.inf}),
            ["body", "records", 0, "mean area"],
            "finite_number",
        ),
    ],
)
def test_bad_values_are_field_level_422s(
    service: RunningService, exported: Path, mutate: object, loc: list[object], kind: str
) -> None:
    body = _example(exported)
    record = dict(body["records"][0])
    mutate(record)  # type: ignore[operator]
    payload = json.dumps({"records": [record]}, allow_nan=True)
    with service.client() as client:
        answer = client.post(
            "/predict", content=payload, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert {"loc": loc, "type": kind} in [{"loc": d["loc"], "type": d["type"]} for d in detail]
    assert answer.json()["request_id"] == answer.headers["x-request-id"]


def test_nan_malformed_json_and_empty_records(service: RunningService) -> None:
    with service.client() as client:
        nan = client.post(
            "/checked",
            content='{"records": [{"x": NaN}]}',
            headers={"content-type": "application/json"},
        )
        assert nan.status_code == 422 and nan.json()["detail"][0]["type"] == "finite_number"
        broken = client.post(
            "/predict", content='{"records": [', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
        empty = client.post("/predict", json={"records": []})
        assert empty.status_code == 422 and "at least one row" in empty.text
        wrong_shape = client.post("/predict", json=[1, 2])
        assert wrong_shape.status_code == 422
        assert "Traceback" not in broken.text + empty.text + wrong_shape.text


def test_model_errors_are_422_for_input_and_500_without_traceback(service: RunningService) -> None:
    with service.client() as client:
        refused = client.post("/checked", json={"records": [{"x": -1.0}]})
        assert refused.status_code == 422
        assert "the model refused the input: ValueError: x must not be negative" in refused.text
        failed = client.post("/checked", json={"records": [{"x": 13.0}]})
        assert failed.status_code == 500
        assert "an internal failure" not in failed.text and "Traceback" not in failed.text
        assert failed.json()["request_id"] == failed.headers["x-request-id"]
        fine = client.post("/checked", json={"records": [{"x": 2.0}]})
        assert fine.json()["predictions"] == [4.0]


def test_a_10_mb_body_is_413(service: RunningService) -> None:
    huge = b'{"records": [' + b'{"x": 1.0},' * 1_000_000 + b'{"x": 1.0}]}'
    assert len(huge) > 10_000_000
    with service.client() as client:
        answer = client.post("/checked", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "larger than 1048576 bytes" in answer.json()["detail"]


def test_health_version_metrics_and_openapi(service: RunningService, exported: Path) -> None:
    with service.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["endpoints"] == ["/checked", "/predict"]
        version = client.get("/version").json()
        assert version["models"][0]["name"] == "bc" and version["models"][0]["version"] == "1"
        assert {e["path"]: e["kind"] for e in version["endpoints"]} == {
            "/checked": "dataframe",
            "/predict": "dataframe",
        }
        client.post("/predict", json=_example(exported))
        assert client.post("/predict", json={"records": [{}]}).status_code == 422
        metrics = client.get("/metrics").text
        for name in (
            'mlnb_requests_total{endpoint="/predict",status="200"}',
            'mlnb_request_duration_seconds_bucket{endpoint="/predict",le="0.1"}',
            "mlnb_requests_in_flight",
            'mlnb_model_info{hash="',
            "process_resident_memory_bytes",
            'mlnb_errors_total{endpoint="/predict",kind="validation"}',
        ):
            assert name in metrics, name
        spec = client.get("/openapi.json").json()
        body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["example"]["records"][0]["mean radius"] == 17.99
        ref = body["schema"]["properties"]["records"]["items"]["$ref"]
        record = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert record["properties"]["mean radius"]["type"] == "number"
        docs = client.get("/docs")
        assert docs.status_code == 200 and "cdn." not in docs.text  # works without internet
        assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_concurrent_requests_are_micro_batched_and_answered_in_order(
    service: RunningService, exported: Path
) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    rows = data.data.iloc[:60]

    async def call_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/predict", json={"records": [row.to_dict()]})
                    for _, row in rows.iterrows()
                )
            )

    answers = asyncio.run(call_all())
    assert [a.status_code for a in answers] == [200] * len(rows)
    assert [a.json()["predictions"][0] for a in answers] == data.target.iloc[:60].tolist() or all(
        a.json()["predictions"][0] in (0, 1) for a in answers
    )
    with service.client() as client:
        metrics = client.get("/metrics").text
    merged = [
        line
        for line in metrics.splitlines()
        if line.startswith('mlnb_batch_requests_bucket{endpoint="/predict",le="1.0"}')
    ]
    count = [
        line
        for line in metrics.splitlines()
        if line.startswith('mlnb_batch_requests_count{endpoint="/predict"}')
    ]
    single, calls = float(merged[0].split()[-1]), float(count[0].split()[-1])
    assert single < calls, "no model call merged more than one request"


@pytest.fixture(scope="module")
def secured(
    exported: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], RunningService]]:
    """``secured(key)``: the service started with ``MLNB_API_KEY=key``, once per key for the
    module (the tests send it requests only)."""
    started: dict[str, RunningService] = {}
    with contextlib.ExitStack() as stack:

        def start(key: str) -> RunningService:
            if key not in started:
                log = tmp_path_factory.mktemp("secured") / "service.log"
                started[key] = stack.enter_context(running_service(exported, log, MLNB_API_KEY=key))
            return started[key]

        yield start


def test_api_key(exported: Path, secured: Callable[[str], RunningService]) -> None:
    with secured("s3cret").client() as client:
        body = _example(exported)
        assert client.post("/predict", json=body).status_code == 401
        assert client.post("/predict", json=body, headers={"X-API-Key": "nope"}).status_code == 401
        assert (
            client.post("/predict", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        )
        ok = client.post("/predict", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200  # probes stay open
        assert "API key" in client.get("/version").json()["detail"]


@pytest.mark.parametrize("configured", ["s3cret", "clé-ü"])
def test_any_api_key_header_is_a_401_or_a_200_never_a_500(
    exported: Path, secured: Callable[[str], RunningService], configured: str
) -> None:
    with secured(configured).client() as client:
        body = _example(exported)
        for sent in (b"\xe9", b"\xff\xfe", "clé".encode(), b"", b"s3cret\xe9"):
            for header in ("X-API-Key", "Authorization") if sent else ("X-API-Key",):
                value = b"Bearer " + sent if header == "Authorization" else sent
                answer = client.post("/predict", json=body, headers={header: value})
                assert answer.status_code == 401, (header, sent, answer.text)
                assert answer.json()["request_id"] == answer.headers["x-request-id"]
        right = configured.encode("utf-8")  # a header's bytes as the client sent them
        assert client.post("/predict", json=body, headers={"X-API-Key": right}).status_code == 200
        bearer = {"Authorization": b"Bearer " + right}
        assert client.post("/predict", json=body, headers=bearer).status_code == 200


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", '{"records": [{"mean radius": 1}]}'),
        ("application/x-www-form-urlencoded", "records=1"),
        ("multipart/form-data; boundary=x", "--x--"),
        (None, '{"records": []}'),
    ],
)
def test_only_json_reaches_the_handlers(
    service: RunningService, exported: Path, content_type: str | None, content: str
) -> None:
    """What a web page can post cross-site without a preflight is refused with 415, so it
    never reaches /feedback, the drift window or a model."""
    headers = {} if content_type is None else {"content-type": content_type}
    with service.client() as client:
        before = client.get("/monitor/feedback").json()
        for path in ("/predict", "/feedback"):
            answer = client.post(path, content=content, headers=headers)
            assert answer.status_code == 415, (path, answer.text)
            assert "application/json" in answer.json()["detail"]
            assert answer.json()["request_id"] == answer.headers["x-request-id"]
        assert client.get("/monitor/feedback").json() == before
        body = _example(exported)
        charset = {"content-type": "application/json; charset=utf-8"}
        ok = client.post("/predict", content=json.dumps(body), headers=charset)
        assert ok.status_code == 200, ok.text


def test_probes_answer_head_and_a_wrong_method_says_which_are_allowed(
    service: RunningService,
) -> None:
    with service.client() as client:
        for probe in ("/healthz", "/readyz"):
            head = client.head(probe)
            assert head.status_code == 200 and head.content == b"", probe
            assert head.headers["x-request-id"]
        wrong = client.post("/healthz", json={})
        assert wrong.status_code == 405
        assert {m.strip() for m in wrong.headers["allow"].split(",")} >= {"GET"}
        assert wrong.json()["request_id"] == wrong.headers["x-request-id"]
        on_predict = client.get("/predict")
        assert on_predict.status_code == 405 and on_predict.headers["allow"] == "POST"
        paths = client.get("/openapi.json").json()["paths"]
        assert "head" in paths["/healthz"] and "head" in paths["/readyz"]


def _serve_once(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlnb", "serve", str(folder), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def test_a_tampered_model_file_stops_the_service_from_starting(
    exported: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "svc"
    shutil.copytree(exported, copy)
    meta = json.loads((copy / "mlnb-service.json").read_text())
    model_dir = copy / meta["models"][0]["path"]
    target = next(p for p in sorted(model_dir.rglob("*")) if p.is_file() and p.name != "MLmodel")
    target.write_bytes(target.read_bytes() + b"tampered")
    done = _serve_once(copy)
    assert done.returncode != 0
    assert (
        "refusing to start: the model files do not match the hash pinned at export" in done.stderr
    )
    assert str(target) in done.stderr
    assert "Traceback" not in done.stderr


def test_not_an_export_folder(tmp_path: Path) -> None:
    done = _serve_once(tmp_path)
    assert done.returncode == 6
    assert "is not an exported service (no mlnb-service.json)" in done.stderr


def test_serve_imports_without_jupyter(exported: Path) -> None:
    code_text = (
        "import sys\nfrom mlnb.serve import create_app\n"
        f"create_app({str(exported)!r})\n"
        "jupyter = {'IPython', 'ipykernel', 'nbformat', 'papermill', 'jupyter_client'}\n"
        "print(sorted(jupyter & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code_text], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"

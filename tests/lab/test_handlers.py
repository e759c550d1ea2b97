"""The REST handlers of mlnb.labserver in a real ``jupyter lab``: authentication, the bad
inputs (outside the root, broken JSON, an export that fails its check) and a pipeline run in
the background. Successful exports are in the browser test (they need a trained model)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.lab.conftest import Lab
from tests.serving import code, write_notebook


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "hint", "cell"}, body
    assert body["error"] and body["hint"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/mlnb/runs?path=train.ipynb", None),
        ("POST", "/mlnb/export", {"path": "serve.ipynb"}),
        ("POST", "/mlnb/pipelines", {"path": "train.ipynb"}),
        ("GET", "/mlnb/pipelines/abc123", None),
        ("POST", "/mlnb/version", {"path": "train.ipynb"}),
    ],
)
def test_every_handler_needs_the_token(
    lab: Lab, method: str, url: str, body: dict[str, str] | None
) -> None:
    before = _listing(lab.root)
    with lab.client(token="") as client:
        response = client.request(method, url, json=body)
    _error(response, 403)
    with lab.client(token="wrong") as client:
        _error(client.request(method, url, json=body), 403)
    assert _listing(lab.root) == before  # nothing ran


def _listing(root: Path) -> list[tuple[str, float]]:
    """What an export, a pipeline run or a version would have written or changed."""
    paths = [*root.glob("*"), *root.glob("build/services/*"), *root.glob(".mlnb/versions.db")]
    return sorted((str(p), p.stat().st_mtime) for p in paths)


def test_runs_of_a_notebook_without_runs(lab: Lab) -> None:
    (lab.root / "fresh.ipynb").write_text((lab.root / "train.ipynb").read_text())
    with lab.client() as client:
        response = client.get("/mlnb/runs", params={"path": "fresh.ipynb"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["runs"] == [] and body["active"] is False
    assert body["notebook"] == "fresh.ipynb"
    assert body["tracking_uri"].endswith("/.mlnb/mlflow.db")
    assert "mlnb ui" in body["ui_hint"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("../outside.ipynb", 403, "outside the server root"),
        ("sub/../../../etc/passwd", 403, "outside the server root"),
        ("missing.ipynb", 404, "does not exist"),
        ("", 400, "no notebook path"),
        ("data.csv", 400, "not a .ipynb file"),
        (".mlnb/mlflow.db", 403, "is hidden"),
    ],
)
def test_runs_refuses_bad_paths(lab: Lab, path: str, status: int, says: str) -> None:
    (lab.root.parent / "outside.ipynb").write_text("{}")
    (lab.root / "data.csv").write_text("a,b\n1,2\n")
    with lab.client() as client:
        body = _error(client.get("/mlnb/runs", params={"path": path}), status)
    assert says in body["error"]


def test_export_of_a_notebook_that_is_not_json(lab: Lab) -> None:
    (lab.root / "broken.ipynb").write_text('{"cells": [\n  {"cell_type": "code",,}\n')
    with lab.client() as client:
        body = _error(client.post("/mlnb/export", json={"path": "broken.ipynb"}), 400)
    assert "broken.ipynb is not valid JSON (line 2" in body["error"]
    assert "repair" in body["hint"]
    assert not (lab.root / "build" / "services" / "broken").exists()


def test_export_failing_its_check_is_a_409_and_writes_nothing(lab: Lab) -> None:
    write_notebook(
        lab.root / "unchecked.ipynb",
        code("import pandas as pd", "mlnb:export"),
        code("def predict(df: pd.DataFrame) -> list[int]:\n    return scaler(df)", "mlnb:export"),
        code("scaler = lambda df: [0] * len(df)"),
    )
    with lab.client() as client:
        body = _error(client.post("/mlnb/export", json={"path": "unchecked.ipynb"}), 409)
    # the cause first, the cells by position (from 1, as the user counts them), then the fix
    assert body["error"].startswith(
        "name 'scaler' is used by cell 3 \"def predict(df: pd.DataFrame) -> list[int]:\" but "
        'it is defined in cell 4 "scaler = lambda df: [0] * len(df)", which is not tagged '
        "mlnb:export; tag cell 4 mlnb:export"
    )
    assert body["cell"] == 2  # the position from 0 that "Go to cell" makes active
    assert body["hint"].startswith("nothing was written: the export check failed")
    services = lab.root / "build" / "services"
    assert not (services / "unchecked").exists()
    assert not any(p.name.startswith(".unchecked") for p in services.glob("*"))


def test_export_output_outside_the_root(lab: Lab) -> None:
    with lab.client() as client:
        response = client.post("/mlnb/export", json={"path": "serve.ipynb", "output": "../svc"})
    assert "outside the server root" in _error(response, 403)["error"]
    assert not (lab.root.parent / "svc").exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not json", "the request body is not JSON"),
        (b'{"path": "serve.ipynb", "colour": "red"}', "colour: Extra inputs are not permitted"),
        (b'{"path": "serve.ipynb", "force": "maybe"}', "force: Input should be a valid boolean"),
        (b'{"force": true}', "path: Field required"),
    ],
)
def test_export_request_body_errors_name_the_field(lab: Lab, content: bytes, says: str) -> None:
    with lab.client() as client:
        response = client.post("/mlnb/export", content=content)
    body = _error(response, 400)
    assert says in body["error"]
    assert "ExportRequest" in body["hint"]


def test_version_a_file(lab: Lab) -> None:
    data = lab.root / "data.csv"
    data.write_text("a,b\n1,2\n")
    with lab.client() as client:
        first = client.post("/mlnb/version", json={"path": "data.csv"})
        assert first.status_code == 200, first.text
        data.write_text("a,b\n1,3\n")
        second = client.post("/mlnb/version", json={"path": "data.csv", "name": "table"})
        assert second.status_code == 200, second.text
        _error(client.post("/mlnb/version", json={"path": "nope.csv"}), 404)
        _error(client.post("/mlnb/version", json={"path": "/../../etc/hosts"}), 403)
    v1, v2 = first.json(), second.json()
    assert (v1["name"], v1["number"], v1["kind"], v1["size"]) == ("data.csv", 1, "file", 8)
    assert len(v1["hash"]) == 64
    assert (v2["name"], v2["number"]) == ("table", 1) and v2["hash"] != v1["hash"]
    assert (lab.root / ".mlnb" / "objects").is_dir()


def test_pipeline_errors(lab: Lab) -> None:
    (lab.root / "lonely").mkdir()
    write_notebook(lab.root / "lonely" / "step.ipynb", code("x = 1"))
    (lab.root / "bad").mkdir()
    (lab.root / "bad" / "pipeline.yaml").write_text("name: bad\nsteps:\n  - {name: a}\n")
    with lab.client() as client:
        missing = _error(client.post("/mlnb/pipelines", json={"path": "lonely/step.ipynb"}), 404)
        bad = _error(client.post("/mlnb/pipelines", json={"path": "bad/pipeline.yaml"}), 400)
        unknown = _error(client.get("/mlnb/pipelines/0123abcd"), 404)
    assert "no pipeline.yaml next to 'lonely/step.ipynb'" in missing["error"]
    assert "pipeline.yaml" in bad["error"] and "line" in bad["error"]
    assert "no pipeline run '0123abcd'" in unknown["error"]


def test_pipeline_runs_in_the_background(lab: Lab) -> None:
    folder = lab.root / "flow"
    (folder / "steps").mkdir(parents=True)
    write_notebook(
        folder / "steps" / "make.ipynb",
        code("n = 3", "parameters"),
        code("from pathlib import Path\nPath('out.txt').write_text(str(n * 2))"),
    )
    (folder / "pipeline.yaml").write_text(
        "name: flow\nsteps:\n"
        "  - {name: make, notebook: steps/make.ipynb, params: {n: 4}, outputs: [out.txt]}\n"
    )
    with lab.client() as client:
        started = client.post("/mlnb/pipelines", json={"path": "flow/steps/make.ipynb"})
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["status"] == "running" and job["pipeline"] == "flow/pipeline.yaml"
        again = client.post("/mlnb/pipelines", json={"path": "flow/pipeline.yaml"})
        if again.status_code != 202:  # (202 only if the first run had already ended)
            assert "already running" in _error(again, 409)["error"]
        deadline = time.monotonic() + 120
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            job = client.get(f"/mlnb/pipelines/{job['job_id']}").json()
    assert job["status"] == "succeeded", json.dumps(job, indent=1) + lab.log_tail()
    assert [(s["name"], s["status"]) for s in job["steps"]] == [("make", "ok")]
    assert job["run_id"] and job["error"] is None
    assert (folder / "out.txt").read_text() == "8"

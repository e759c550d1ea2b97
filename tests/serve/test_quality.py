"""Defaults from the training profile, range checks, and online drift (in-process app)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tests.serve.conftest import LoopClient, Safe, app_client, metric


def test_an_answer_without_anything_to_report_keeps_its_old_shape(safe: Safe) -> None:
    with app_client(safe.folder) as client:
        answer = client.post("/predict", json=safe.body(2))
    assert answer.status_code == 200
    assert set(answer.json()) == {"predictions", "model", "request_id"}
    assert answer.json()["model"] == {"name": "bc", "version": "1"}
    assert answer.headers["x-model-version"] == "bc/1"
    assert answer.headers["x-model-role"] == "champion"


def test_a_missing_feature_is_filled_from_the_profile(safe: Safe) -> None:
    from mlnb.monitor import Profile

    median = Profile.load(safe.profile).features["mean area"].default
    body = safe.body(2)
    del body["records"][1]["mean area"]
    body["records"][0]["worst area"] = None
    with app_client(safe.folder) as client:
        answer = client.post("/predict", json=body)
        metrics = client.get("/metrics").text
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["filled_fields"] == [["worst area"], ["mean area"]]
    assert any("mean area" in w and "record 1" in w for w in doc["warnings"])
    assert len(doc["predictions"]) == 2
    assert metric(metrics, 'mlnb_filled_fields_total{endpoint="/predict",feature="mean area"}')
    audit = _audit_lines(safe.folder)
    mine = next(d for d in audit if d.get("request_id") == doc["request_id"])
    assert mine["inputs"][1]["mean area"] == median  # the model saw the default
    assert mine["filled_fields"] == [["worst area"], ["mean area"]]


def test_a_value_far_outside_the_training_range_is_flagged_and_counted(safe: Safe) -> None:
    with app_client(safe.folder) as client:
        answer = client.post("/predict", json=safe.body(2, **{"mean radius": 1e6}))
        metrics = client.get("/metrics").text
    assert answer.status_code == 200
    assert answer.json()["out_of_range"] == [["mean radius"], ["mean radius"]]
    assert "far outside the training range: mean radius" in answer.json()["warnings"][0]
    count = metric(metrics, 'mlnb_out_of_range_total{endpoint="/predict",feature="mean radius"}')
    assert count == 2.0


def test_openapi_marks_profiled_features_optional(safe: Safe) -> None:
    with app_client(safe.folder) as client:
        spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["properties"]["records"]["items"]["$ref"]
    record = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "mean radius" not in record.get("required", [])
    assert (
        "filled_fields"
        in spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]["properties"]
    )


def test_a_profile_of_other_columns_leaves_the_service_as_it_was(
    safe: Safe, tmp_path: Path
) -> None:
    from mlnb.monitor import profile

    copy = tmp_path / "svc"
    shutil.copytree(safe.folder, copy, ignore=shutil.ignore_patterns("audit"))
    profile({"height": [1.0, 2.0, 3.0], "colour": ["a", "b", "a"]}, name="other", log=False).save(
        copy / "profile.json"
    )
    with app_client(copy) as client:
        good = client.post("/predict", json=safe.body(1))
        missing = safe.body(1)
        del missing["records"][0]["mean area"]
        refused = client.post("/predict", json=missing)
        version = client.get("/version").json()
        drift = client.get("/monitor/drift").json()
    assert good.status_code == 200 and "filled_fields" not in good.json()
    assert refused.status_code == 422  # no profile of this column: it is required again
    assert refused.json()["detail"][0]["loc"] == ["body", "records", 0, "mean area"]
    assert version["profile"]["name"] == "other" and version["profile"]["features"] == {}
    assert drift["n"] == 0 and "shares no column" in drift["detail"]


def test_a_broken_profile_file_is_reported_not_fatal(safe: Safe, tmp_path: Path) -> None:
    copy = tmp_path / "svc"
    shutil.copytree(safe.folder, copy, ignore=shutil.ignore_patterns("audit"))
    (copy / "profile.json").write_text("{not json")
    with app_client(copy) as client:
        assert client.post("/predict", json=safe.body(1)).status_code == 200
        version = client.get("/version").json()
        drift = client.get("/monitor/drift").json()
    assert "cannot be read" in version["profile"]["error"]
    assert "export the notebook again" in drift["detail"].lower()


def _training_rows(n: int, shift: dict[str, float]) -> list[list[dict[str, float]]]:
    """``n`` rows of the training data (``shift`` added to some columns), 20 per request."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).data.sample(n, random_state=0, replace=True)
    for column, delta in shift.items():
        frame[column] = frame[column] + delta
    rows = frame.to_dict(orient="records")
    return [rows[i : i + 20] for i in range(0, n, 20)]


def _drift_over(client: LoopClient, n: int) -> dict[str, Any]:
    """GET /monitor/drift until its window holds ``n`` inputs (at most 30 s)."""
    deadline = time.monotonic() + 30
    drift: dict[str, Any] = client.get("/monitor/drift").json()
    while drift["n"] < n and time.monotonic() < deadline:
        time.sleep(0.1)
        drift = client.get("/monitor/drift").json()
    return drift


def test_drift_rises_on_shifted_inputs_and_raises_an_alert(safe: Safe) -> None:
    from mlnb.monitor import Profile

    feature = Profile.load(safe.profile).features["mean radius"]
    assert feature.std is not None
    env = {"MLNB_DRIFT_WINDOW": "200", "MLNB_DRIFT_EVERY": "50", "MLNB_DRIFT_SECONDS": "0.2"}
    with app_client(safe.folder, **env) as client:
        for rows in _training_rows(200, {"mean radius": 1.5 * feature.std}):
            assert client.post("/predict", json={"records": rows}).is_success
        drift = _drift_over(client, 200)
        metrics = client.get("/metrics").text
    assert drift["profile"] == "breast-cancer"
    assert drift["n"] == 200 and drift["checked_at"]
    assert drift["drifted"] == ["mean radius"]
    radius = drift["features"]["mean radius"]
    assert radius["drifted"] is True and radius["method"] == "psi"
    assert metric(metrics, 'mlnb_drift_detected{feature="mean radius"}') == 1.0
    assert metric(metrics, 'mlnb_drift_detected{feature="mean texture"}') == 0.0
    assert (metric(metrics, 'mlnb_drift_statistic{feature="mean radius"}') or 0) > 0.1
    assert metric(metrics, 'mlnb_alerts_total{kind="drift"}') == 1.0
    events = [json.loads(line) for line in (safe.folder / "audit" / "events.jsonl").open()]
    assert any(e["event"] == "drift" and "mean radius" in e["message"] for e in events)


def test_unshifted_inputs_do_not_drift(safe: Safe) -> None:
    env = {"MLNB_DRIFT_WINDOW": "200", "MLNB_DRIFT_EVERY": "50", "MLNB_DRIFT_SECONDS": "0.2"}
    with app_client(safe.folder, **env) as client:
        for rows in _training_rows(200, {}):
            assert client.post("/predict", json={"records": rows}).is_success
        drift = _drift_over(client, 200)
    assert drift["n"] == 200 and len(drift["features"]) == 30
    assert drift["drifted"] == []


def test_the_drift_threshold_is_the_psi_of_numbers(safe: Safe) -> None:
    """``MLNB_DRIFT_THRESHOLD`` reaches the numbers' PSI check (the service runs
    ``mlnb.monitor.DriftMonitor``); ``MLNB_DRIFT_P_VALUE`` is for categories only."""
    env = {
        "MLNB_DRIFT_WINDOW": "200",
        "MLNB_DRIFT_EVERY": "50",
        "MLNB_DRIFT_SECONDS": "0.2",
        "MLNB_DRIFT_THRESHOLD": "0.3",
        "MLNB_DRIFT_P_VALUE": "0.01",
    }
    with app_client(safe.folder, **env) as client:
        for rows in _training_rows(100, {}):
            assert client.post("/predict", json={"records": rows}).is_success
        drift = _drift_over(client, 100)
        monitor = client.app.state.runtime.drift.monitor
    assert (monitor.threshold, monitor.p_value) == (0.3, 0.01)
    assert drift["n"] == 100 and drift["features"]
    assert {(f["method"], f["threshold"]) for f in drift["features"].values()} == {("psi", 0.3)}


def _audit_lines(folder: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted((folder / "audit").glob("predictions-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines

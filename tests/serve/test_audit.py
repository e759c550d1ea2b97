"""The audit log, feedback and live accuracy, and resource alerts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from blake3 import blake3

from tests.serve.conftest import Safe, app_client, metric


def _lines(folder: Path, pattern: str = "predictions-*.jsonl") -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob(pattern))
        for line in path.read_text().splitlines()
    ]


def test_every_prediction_is_audited_with_its_inputs_hash(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit), MLNB_ROUTING="off") as client:
        answers = [
            client.post("/predict", json=safe.body(2), headers={"X-Request-ID": f"req-{i}"})
            for i in range(3)
        ]
        client.app.state.runtime.audit.flush()
        version = client.get("/version").json()
    assert version["audit"] == str(audit.resolve())  # outside the service folder: as given
    records = _lines(audit)
    assert [r["request_id"] for r in records] == ["req-0", "req-1", "req-2"]
    first = records[0]
    assert first["kind"] == "prediction" and first["endpoint"] == "/predict"
    assert first["model"] == {"name": "bc", "version": "1", "role": "champion"}
    assert first["inputs"] == safe.body(2)["records"]
    assert first["outputs"] == answers[0].json()["predictions"]
    import orjson

    assert first["inputs_hash"] == blake3(orjson.dumps(first["inputs"])).hexdigest()
    assert first["fallback"] is False and first["shadow"] is False
    assert first["latency_ms"] > 0 and first["time"].endswith("Z")


def test_feedback_gives_live_accuracy(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit)) as client:
        one = client.post("/predict", json=safe.body(1)).json()
        two = client.post("/predict", json=safe.body(2)).json()
        right = client.post(
            "/feedback", json={"request_id": one["request_id"], "label": one["predictions"][0]}
        )
        half = client.post(
            "/feedback",
            json={"request_id": two["request_id"], "label": [two["predictions"][0], 7]},
        )
        summary = client.get("/monitor/feedback").json()
        metrics = client.get("/metrics").text
        client.app.state.runtime.audit.flush()
    assert right.status_code == 200 and right.json()["correct"] == 1
    assert half.status_code == 200 and half.json()["correct"] == 1
    assert summary["endpoints"]["/predict"] == {"labelled": 3, "correct": 2, "accuracy": 2 / 3}
    assert metric(metrics, 'mlnb_live_accuracy{endpoint="/predict"}') == 2 / 3
    saved = _lines(audit, "feedback.jsonl")
    assert [f["request_id"] for f in saved] == [one["request_id"], two["request_id"]]


def test_feedback_for_an_answer_of_an_earlier_process_is_found_in_the_files(
    safe: Safe, tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit)) as client:
        answer = client.post("/predict", json=safe.body(1)).json()
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit)) as client:  # a restart
        later = client.post("/feedback", json={"request_id": answer["request_id"], "label": 0})
    assert later.status_code == 200 and later.json()["n"] == 1


def test_bad_feedback_is_refused_clearly(safe: Safe, tmp_path: Path) -> None:
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(tmp_path / "audit")) as client:
        unknown = client.post("/feedback", json={"request_id": "nope", "label": 1})
        answer = client.post("/predict", json=safe.body(2)).json()
        count = client.post("/feedback", json={"request_id": answer["request_id"], "label": 1})
        shape = client.post("/feedback", json={"label": 1})
        summary = client.get("/monitor/feedback").json()
    assert unknown.status_code == 404
    assert "no prediction with request_id 'nope'" in unknown.json()["detail"]
    assert count.status_code == 409 and "one label per prediction" in count.json()["detail"]
    assert shape.status_code == 422
    assert shape.json()["detail"][0]["loc"] == ["body", "request_id"]
    assert summary == {"endpoints": {}}  # nothing counted from refused feedback


def test_audit_off(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT="off", MLNB_AUDIT_DIR=str(audit)) as client:
        answer = client.post("/predict", json=safe.body(1)).json()
        feedback = client.post("/feedback", json={"request_id": answer["request_id"], "label": 1})
        assert client.get("/version").json()["audit"] is None
    assert feedback.status_code == 409 and "MLNB_AUDIT=off" in feedback.json()["detail"]
    assert not audit.exists()


def test_audit_files_rotate_by_size_and_lose_nothing(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    env = {"MLNB_AUDIT_DIR": str(audit), "MLNB_AUDIT_MAX_BYTES": "20000", "MLNB_ROUTING": "off"}
    with app_client(safe.folder, **env) as client:
        ids = [client.post("/predict", json=safe.body(3)).json()["request_id"] for _ in range(30)]
        client.app.state.runtime.audit.flush()
    files = sorted(audit.glob("predictions-*.jsonl"))
    assert len(files) >= 2
    assert [r["request_id"] for r in _lines(audit)] == ids


def test_rss_growth_past_the_factor_raises_an_alert(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    env = {
        "MLNB_AUDIT_DIR": str(audit),
        "MLNB_RSS_ALERT_FACTOR": "0.5",  # the first check after warm-up is already past it
        "MLNB_WARMUP_REQUESTS": "1",
        "MLNB_RESOURCE_INTERVAL": "0.1",
        "MLNB_ERROR_RATE_ALERT": "0.01",
    }
    with app_client(safe.folder, **env) as client:
        client.post("/predict", json=safe.body(1))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            metrics = client.get("/metrics").text
            if metric(metrics, 'mlnb_alerts_total{kind="rss"}'):
                break
            time.sleep(0.1)
    assert metric(metrics, 'mlnb_alerts_total{kind="rss"}') == 1.0  # once, not every check
    assert (metric(metrics, "mlnb_rss_bytes") or 0) > 0
    assert (metric(metrics, "mlnb_rss_baseline_bytes") or 0) > 0
    assert metric(metrics, "mlnb_error_rate") is not None
    events = _lines(audit, "events.jsonl")
    assert any(e["event"] == "rss" and "over 0.5x" in e["message"] for e in events)

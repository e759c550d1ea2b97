"""The circuit breaker and the fallback: the model fails on demand (``mean radius`` equal to
the notebook's sentinel) and the notebook's ``@mlnb.fallback`` or the profile's rule answers."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tests.serve.conftest import SENTINEL, Safe, app_client, metric

FAST = {"MLNB_BREAKER_FAILURES": "3", "MLNB_BREAKER_COOLDOWN_S": "0.5"}


def test_failures_open_the_breaker_and_the_fallback_answers_until_a_probe_succeeds(
    safe: Safe,
) -> None:
    failing = safe.body(1, **{"mean radius": SENTINEL})
    good = safe.body(1)
    with app_client(safe.folder, **FAST) as client:
        first = client.post("/predict", json=failing)
        # a failure is answered by the fallback, marked in the body and the headers
        assert first.status_code == 200, first.text
        assert first.json()["predictions"] == [1]
        assert first.json()["fallback"] is True
        assert first.json()["fallback_reason"] == "primary_error"
        assert first.headers["x-mlnb-fallback"] == "primary_error"
        assert first.headers["x-model-role"] == "fallback"
        assert "failed on purpose" not in first.text
        for _ in range(2):
            assert client.post("/predict", json=failing).json()["fallback"] is True
        metrics = client.get("/metrics").text
        assert metric(metrics, 'mlnb_breaker_state{endpoint="/predict"}') == 2.0
        # open: even a good request is answered by the fallback, without calling the model
        opened = client.post("/predict", json=good)
        assert opened.json()["fallback_reason"] == "breaker_open"
        version = client.get("/version").json()
        assert version["breakers"]["/predict"]["state"] == "open"
        assert version["fallbacks"]["/predict"] == "notebook: baseline"
        time.sleep(0.6)  # the cool-down: the next request probes the model
        probe = client.post("/predict", json=good)
        assert probe.status_code == 200 and "fallback" not in probe.json()
        assert probe.headers["x-model-role"] == "champion"
        metrics = client.get("/metrics").text
    assert metric(metrics, 'mlnb_breaker_state{endpoint="/predict"}') == 0.0
    assert metric(metrics, 'mlnb_fallback_total{endpoint="/predict",reason="primary_error"}') == 3
    assert metric(metrics, 'mlnb_fallback_total{endpoint="/predict",reason="breaker_open"}') == 1
    assert metric(metrics, 'mlnb_alerts_total{kind="breaker_open"}') == 1.0


def test_a_failed_probe_opens_the_breaker_again(safe: Safe) -> None:
    failing = safe.body(1, **{"mean radius": SENTINEL})
    with app_client(safe.folder, **FAST) as client:
        for _ in range(3):
            client.post("/predict", json=failing)
        time.sleep(0.6)
        probe = client.post("/predict", json=failing)
        assert probe.json()["fallback_reason"] == "primary_error"
        after = client.post("/predict", json=safe.body(1))
        assert after.json()["fallback_reason"] == "breaker_open"


def test_latency_over_the_budget_counts_as_a_failure(safe: Safe) -> None:
    env = {**FAST, "MLNB_LATENCY_BUDGET_MS": "0.0001", "MLNB_BREAKER_COOLDOWN_S": "60"}
    with app_client(safe.folder, **env) as client:
        answers = [client.post("/predict", json=safe.body(1)).json() for _ in range(4)]
    assert all("fallback" not in a for a in answers[:3])  # slow answers are still answers
    assert answers[3]["fallback_reason"] == "breaker_open"


def test_without_a_fallback_a_failure_is_a_500_then_a_clear_503(safe: Safe) -> None:
    failing = safe.body(1, **{"mean radius": SENTINEL})
    with app_client(safe.folder, **{**FAST, "MLNB_BREAKER_COOLDOWN_S": "60"}) as client:
        errors = [client.post("/raw", json=failing) for _ in range(3)]
        assert [e.status_code for e in errors] == [500, 500, 500]
        assert all("Traceback" not in e.text and "on purpose" not in e.text for e in errors)
        closed_off = client.post("/raw", json=safe.body(1))
        still = client.post("/predict", json=safe.body(1))  # other endpoints are not affected
    assert closed_off.status_code == 503
    detail = closed_off.json()["detail"]
    assert "circuit breaker is open" in detail and "@mlnb.fallback('/raw')" in detail
    assert closed_off.json()["request_id"] == closed_off.headers["x-request-id"]
    assert still.status_code == 200 and "fallback" not in still.json()


def test_the_profile_target_is_the_fallback_when_the_notebook_has_none(
    safe: Safe, tmp_path: Path
) -> None:
    from sklearn.datasets import load_breast_cancer

    from mlnb.monitor import profile

    copy = tmp_path / "svc"
    shutil.copytree(safe.folder, copy, ignore=shutil.ignore_patterns("audit"))
    frame = load_breast_cancer(as_frame=True).frame  # the 30 features and "target"
    profile(frame, name="with-target", target="target", log=False).save(copy / "profile.json")
    failing = safe.body(2, **{"mean radius": SENTINEL})
    with app_client(copy, **FAST) as client:
        answer = client.post("/raw", json=failing)
        version = client.get("/version").json()
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [1, 1]  # benign is the most frequent class
    assert answer.json()["fallback"] is True
    assert version["fallbacks"]["/raw"].startswith("profile: constant 1")
    assert version["fallbacks"]["/predict"] == "notebook: baseline"


def test_fallback_answers_are_flagged_in_the_audit_log(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit)) as client:
        answer = client.post("/predict", json=safe.body(1, **{"mean radius": SENTINEL}))
        client.app.state.runtime.audit.flush()
    rid = answer.json()["request_id"]
    records = [json.loads(line) for p in audit.glob("predictions-*.jsonl") for line in p.open()]
    mine = [r for r in records if r["request_id"] == rid]
    assert len(mine) == 1  # the shadow does not run for a fallback answer
    assert mine[0]["fallback"] is True and mine[0]["fallback_reason"] == "primary_error"
    assert mine[0]["model"]["role"] == "champion" and mine[0]["outputs"] == [1]


def test_typed_endpoints_say_who_answered_in_headers(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit), MLNB_ROUTING="off") as client:
        fine = client.post("/double", json={"x": 2.5})
        failed = client.post("/double", json={"x": SENTINEL})
        client.app.state.runtime.audit.flush()
    assert fine.json() == 5.0  # the function's own answer, as before
    assert fine.headers["x-model-role"] == "champion" and "x-mlnb-fallback" not in fine.headers
    assert failed.status_code == 200 and failed.json() == 0.0
    assert failed.headers["x-mlnb-fallback"] == "primary_error"
    assert failed.headers["x-model-version"] == "fallback"
    records = [json.loads(line) for p in audit.glob("predictions-*.jsonl") for line in p.open()]
    assert [(r["inputs"], r["outputs"], r["fallback"]) for r in records] == [
        ({"x": 2.5}, 5.0, False),
        ({"x": SENTINEL}, 0.0, True),
    ]

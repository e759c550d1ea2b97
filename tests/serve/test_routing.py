"""Champion and challenger: shadow, canary (sticky per X-Client-ID), off, and a challenger
that fails to load."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mlnb.exceptions import NotebookError
from tests.serve.conftest import SENTINEL, Safe, app_client, metric
from tests.serving import running_service


def _records(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("predictions-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_shadow_answers_with_the_champion_and_logs_the_challenger(
    safe: Safe, tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit)) as client:
        version = client.get("/version").json()
        answers = [client.post("/predict", json=safe.body(3)) for _ in range(5)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            client.app.state.runtime.audit.flush()
            if len(_records(audit)) == 10:  # a prediction line and a shadow line each
                break
            time.sleep(0.05)
        metrics = client.get("/metrics").text
    serving = version["serving"]
    assert serving["mode"] == "shadow"
    assert serving["champion"]["version"] == "1" and serving["challenger"]["version"] == "2"
    assert serving["challenger_error"] is None
    assert all(a.headers["x-model-version"] == "bc/1" for a in answers)
    lines = _records(audit)
    records = {r["request_id"]: r for r in lines if r["kind"] == "prediction"}
    shadows = {r["request_id"]: r for r in lines if r["kind"] == "shadow"}
    assert set(records) == set(shadows) == {a.json()["request_id"] for a in answers}
    first = answers[0].json()
    record = records[first["request_id"]]
    assert record["shadow"] is True and "challenger" not in record
    assert record["model"] == {"name": "bc", "version": "1", "role": "champion"}
    assert record["outputs"] == first["predictions"]
    shadow = shadows[first["request_id"]]  # written after the answer, once the challenger ran
    assert shadow["endpoint"] == "/predict" and shadow["time"] == record["time"]
    challenger = shadow["challenger"]
    assert challenger["model"] == {"name": "bc", "version": "2"}
    assert len(challenger["outputs"]) == 3 and challenger["error"] is None
    assert challenger["agree"] == (challenger["outputs"] == first["predictions"])
    agree = metric(metrics, 'mlnb_shadow_total{endpoint="/predict",outcome="agree"}') or 0
    disagree = metric(metrics, 'mlnb_shadow_total{endpoint="/predict",outcome="disagree"}') or 0
    assert agree + disagree == 5


def test_a_costly_challenger_stretches_the_shadow_window_and_loses_no_request(
    safe: Safe, tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    with app_client(safe.folder, MLNB_AUDIT_DIR=str(audit)) as client:
        runtime = client.app.state.runtime

        def shadowed(n: int) -> list[dict[str, Any]]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runtime.audit.flush()
                lines = [r for r in _records(audit) if r["kind"] == "shadow"]
                if len(lines) >= n:
                    return lines
                time.sleep(0.05)
            raise AssertionError(f"fewer than {n} shadow lines within 30 s")

        # a share the challenger's CPU time always exceeds: the window is stretched to the
        # longest one, so the next requests all wait for one challenger call
        runtime.shadow_share = 1e-12
        runtime.shadow_max_window = 10.0
        client.post("/predict", json=safe.body(2))
        shadowed(1)
        assert runtime._shadow_delay == 10.0
        answers = [client.post("/predict", json=safe.body(2)) for _ in range(4)]
        lines = shadowed(5)[1:]
        assert {r["request_id"] for r in lines} == {a.json()["request_id"] for a in answers}
        assert all(r["challenger"]["error"] is None for r in lines)
        # one call for requests 2 to 5 (sent well within the 10 s window)
        assert {r["challenger"]["batch_requests"] for r in lines} == {4}
        # a generous share: the window is the configured one, the delay the CPU time / share
        runtime.shadow_share = 1e6
        runtime._shadow_delay = 0.0  # not the 10 s the last call left
        client.post("/predict", json=safe.body(1))
        shadowed(6)
        assert 0 < runtime._shadow_delay < runtime.shadow_window


def test_a_canary_challenger_that_fails_hands_the_request_to_the_champion(safe: Safe) -> None:
    env = {"MLNB_ROUTING": "canary", "MLNB_CANARY_WEIGHT": "1", "MLNB_AUDIT": "off"}
    with app_client(safe.folder, **env) as client:
        # the sentinel fails the challenger, then the champion: the fallback answers
        failing = client.post("/predict", json=safe.body(1, **{"mean radius": SENTINEL}))
        fine = client.post("/predict", json=safe.body(1))
        metrics = client.get("/metrics").text
    assert failing.status_code == 200 and failing.json()["fallback"] is True
    assert metric(metrics, 'mlnb_errors_total{endpoint="/predict",kind="challenger"}') == 1.0
    assert fine.headers["x-model-role"] == "challenger"
    assert fine.json()["model"] == {"name": "bc", "version": "2"}


def test_canary_is_sticky_per_client_id(safe: Safe) -> None:
    env = {"MLNB_ROUTING": "canary", "MLNB_CANARY_WEIGHT": "0.5", "MLNB_AUDIT": "off"}
    seen: dict[str, set[str]] = {}
    with app_client(safe.folder, **env) as client:
        version = client.get("/version").json()["serving"]
        for i in range(30):
            for _ in range(3):
                answer = client.post(
                    "/predict", json=safe.body(1), headers={"X-Client-ID": f"client-{i}"}
                )
                body_version = answer.json()["model"]["version"]
                assert answer.headers["x-model-version"] == f"bc/{body_version}"
                seen.setdefault(f"client-{i}", set()).add(answer.headers["x-model-role"])
        metrics = client.get("/metrics").text
    assert version["mode"] == "canary" and version["canary_weight"] == 0.5
    assert all(len(roles) == 1 for roles in seen.values()), seen
    roles = [next(iter(r)) for r in seen.values()]
    assert 0 < roles.count("challenger") < 30
    challenger = metric(metrics, 'mlnb_predictions_total{endpoint="/predict",role="challenger"}')
    assert challenger == 3 * roles.count("challenger")


def test_routing_off_never_calls_the_challenger(safe: Safe, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    env = {"MLNB_ROUTING": "off", "MLNB_AUDIT_DIR": str(audit)}
    with app_client(safe.folder, **env) as client:
        for _ in range(3):
            client.post("/predict", json=safe.body(1), headers={"X-Client-ID": "a"})
        client.app.state.runtime.audit.flush()
        assert client.get("/version").json()["serving"]["mode"] == "off"
    records = _records(audit)
    assert [r["kind"] for r in records] == ["prediction"] * 3
    assert all(r["shadow"] is False and "challenger" not in r for r in records)


def test_a_challenger_that_fails_to_load_leaves_the_champion_serving(
    safe: Safe, tmp_path: Path
) -> None:
    env = {"MLNB_CHALLENGER": "models:/bc/99", "MLNB_AUDIT_DIR": str(tmp_path / "audit")}
    with running_service(safe.folder, tmp_path / "service.log", **env) as service:
        with service.client() as client:
            assert client.get("/readyz").status_code == 200
            answer = client.post("/predict", json=safe.body(2))
            serving = client.get("/version").json()["serving"]
        logged = [json.loads(line) for line in service.log_lines() if line.startswith("{")]
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "bc/1"
    assert serving["challenger"] is None and serving["mode"] == "off"
    assert "models:/bc/99 failed to load" in serving["challenger_error"]
    assert "serving the champion only" in serving["challenger_error"]
    assert any(
        e["level"] == "error" and "models:/bc/99 failed to load" in e["message"] for e in logged
    )


def test_a_challenger_named_at_serve_time_is_downloaded(safe: Safe, tmp_path: Path) -> None:
    copy = tmp_path / "svc"
    shutil.copytree(safe.folder, copy, ignore=shutil.ignore_patterns("audit"))
    meta = json.loads((copy / "mlnb-service.json").read_text())
    shutil.rmtree(copy / meta.pop("challenger")["path"])
    (copy / "mlnb-service.json").write_text(json.dumps(meta))
    env = {"MLNB_CHALLENGER": "models:/bc@challenger", "MLNB_ROUTING": "canary",
           "MLNB_CANARY_WEIGHT": "1"}  # fmt: skip
    with app_client(copy, **env) as client:
        answer = client.post("/predict", json=safe.body(1))
        serving = client.get("/version").json()["serving"]
    assert serving["challenger"]["version"] == "2"
    assert serving["challenger"]["uri"] == "models:/bc@challenger"
    assert answer.json()["model"] == {"name": "bc", "version": "2"}
    assert (copy / "model" / "bc-v2" / "MLmodel").is_file()


def test_a_tampered_challenger_is_refused_and_the_champion_serves(
    safe: Safe, tmp_path: Path
) -> None:
    copy = tmp_path / "svc"
    shutil.copytree(safe.folder, copy, ignore=shutil.ignore_patterns("audit"))
    meta = json.loads((copy / "mlnb-service.json").read_text())
    (copy / meta["challenger"]["path"] / "MLmodel").write_text("tampered")
    with app_client(copy) as client:
        assert client.post("/predict", json=safe.body(1)).status_code == 200
        serving = client.get("/version").json()["serving"]
    assert serving["challenger"] is None
    assert "do not match the hash pinned at export" in serving["challenger_error"]


def test_export_refuses_a_challenger_that_does_not_resolve(safe: Safe, tmp_path: Path) -> None:
    from mlnb.export import export_notebook

    with pytest.raises(NotebookError, match=r"the challenger 'models:/bc/42' does not resolve"):
        export_notebook(safe.notebook, tmp_path / "svc", verify=False, challenger="models:/bc/42")
    assert not (tmp_path / "svc").exists()


def test_export_refuses_an_unknown_routing_or_weight(safe: Safe, tmp_path: Path) -> None:
    from mlnb.export import export_notebook

    with pytest.raises(NotebookError, match=r"routing 'sideways' is not shadow, canary or off"):
        export_notebook(safe.notebook, tmp_path / "svc", verify=False, routing="sideways")
    with pytest.raises(NotebookError, match=r"canary weight 1.5 is not between 0 and 1"):
        export_notebook(safe.notebook, tmp_path / "svc", verify=False, canary_weight=1.5)
    assert not (tmp_path / "svc").exists()

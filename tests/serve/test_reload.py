"""A service following the `champion` alias reloads in place, under load, without a failed
request (a real uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.serve.conftest import Safe, set_alias
from tests.serving import MODEL_NAME, RunningService, running_service


def _wait(predicate: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Load:
    """Requests, one after another from 2 threads, until stopped; every status kept."""

    def __init__(self, service: RunningService, body: dict[str, object]) -> None:
        self.statuses: Counter[int] = Counter()
        self.versions: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(service.url, body)) for _ in range(2)
        ]

    def _run(self, url: str, body: dict[str, object]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post("/predict", json=body)
                    self.statuses[answer.status_code] += 1
                    self.versions.append(answer.headers.get("x-model-version", ""))
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _version(service: RunningService) -> dict[str, object]:
    return httpx.get(f"{service.url}/version", timeout=10).json()  # type: ignore[no-any-return]


def test_moving_the_alias_swaps_the_model_under_load_without_a_failed_request(
    safe: Safe, tmp_path: Path
) -> None:
    env = {
        "MLNB_FOLLOW": "champion",
        "MLNB_FOLLOW_INTERVAL": "0.3",
        "MLNB_ROUTING": "off",
        "MLNB_AUDIT_DIR": str(tmp_path / "audit"),
    }
    set_alias("champion", "1")
    try:
        with running_service(safe.folder, tmp_path / "service.log", **env) as service:
            assert _version(service)["follow"]["uri"] == "models:/bc@champion"  # type: ignore[index]
            with Load(service, safe.body(1)) as load:
                assert _wait(lambda: load.statuses[200] > 20)
                set_alias("champion", "2")  # what `mlnb promote bc 2` does
                assert _wait(lambda: "bc/2" in load.versions[-5:]), service.log.read_text()[-2000:]
                assert _wait(lambda: load.versions.count("bc/2") > 20)
                set_alias("champion", "1")  # what `mlnb rollback bc` does
                assert _wait(lambda: load.versions[-5:].count("bc/1") == 5)
            version = _version(service)
    finally:
        set_alias("champion", "1")
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors)
    assert version["serving"]["champion"]["version"] == "1"  # type: ignore[index]
    assert version["serving"]["reloaded_at"]  # type: ignore[index]
    assert version["models"][0]["version"] == "1"  # type: ignore[index]
    assert version["follow"]["error"] is None  # type: ignore[index]
    logged = [json.loads(line) for line in service.log_lines() if line.startswith("{")]
    assert any("now serving bc/2 (was bc/1)" in e["message"] for e in logged)


def test_a_version_that_fails_to_load_is_not_swapped_in(safe: Safe, tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.dummy import DummyClassifier

    import mlnb

    # fitted on a bare array: no feature_names_in_, which the notebook's code needs
    X, y = load_breast_cancer(return_X_y=True)
    mlnb.start_run(experiment_name="train")
    info = mlnb.log_model(DummyClassifier().fit(X, y), "model", registered_model_name=MODEL_NAME)
    mlnb.end_run()
    broken = str(info.registered_model_version)
    audit = tmp_path / "audit"
    env = {"MLNB_FOLLOW": "champion", "MLNB_FOLLOW_INTERVAL": "0.3", "MLNB_AUDIT_DIR": str(audit)}
    set_alias("champion", "1")
    try:
        with running_service(safe.folder, tmp_path / "service.log", **env) as service:
            set_alias("champion", broken)
            assert _wait(lambda: bool(_version(service)["follow"]["error"]))  # type: ignore[index]
            follow = _version(service)["follow"]
            answer = httpx.post(f"{service.url}/predict", json=safe.body(1), timeout=10)
            ready = httpx.get(f"{service.url}/readyz", timeout=10)
            metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
    finally:
        set_alias("champion", "1")
    assert f"version {broken} of models:/bc@champion failed to load" in follow["error"]  # type: ignore[index]
    assert "still serving version 1" in follow["error"]  # type: ignore[index]
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "bc/1"
    assert ready.status_code == 200
    assert 'mlnb_model_reloads_total{outcome="failed"} 1.0' in metrics
    events = [json.loads(line) for line in (audit / "events.jsonl").open()]
    assert [e["event"] for e in events] == ["reload_failed"]

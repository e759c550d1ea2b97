"""What the sidebar reads from a real ``jupyter lab``: runs with params and pipeline-step
links (a real pipeline run), the comparison of runs (mlnb.widgets' HTML), and the MLflow UI
started on demand (a real ``mlnb ui``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
from mlflow import MlflowClient

from mlnb.labserver._mlflow_ui import START_TIMEOUT
from tests.lab.conftest import Lab
from tests.serving import code, write_notebook


def _store(lab: Lab, project: Path | None = None) -> MlflowClient:
    return MlflowClient(f"sqlite:///{(project or lab.root) / '.mlnb' / 'mlflow.db'}")


def _own_project(lab: Lab, name: str, migrated_store: Path) -> Path:
    """A project folder of its own under the server root: its store, and so its MLflow UI,
    are this test's alone (the lab server is shared by the session: an earlier test, the
    browser's sidebar test, may have started the root project's UI already)."""
    project = lab.root / name
    (project / ".mlnb").mkdir(parents=True)
    shutil.copy(migrated_store, project / ".mlnb" / "mlflow.db")
    return project


def _two_runs(lab: Lab, notebook: str) -> list[str]:
    """Two finished runs of ``notebook`` that differ by C only (and by their metrics), in
    the store of the project the notebook is in."""
    folder = (lab.root / notebook).parent
    client = _store(lab, folder if (folder / ".mlnb").is_dir() else lab.root)
    experiment = client.get_experiment_by_name("sidebar")
    eid = experiment.experiment_id if experiment else client.create_experiment("sidebar")
    ids = []
    for c, accuracy in (("0.1", 0.972), ("10", 0.979)):
        run = client.create_run(
            eid,
            run_name=f"svm-C{c}",
            tags={"mlnb.notebook": str((lab.root / notebook).resolve())},
        )
        rid = run.info.run_id
        client.log_param(rid, "C", c)
        client.log_param(rid, "kernel", "rbf")
        for step, loss in enumerate((0.9, 0.5, 0.3)):
            client.log_metric(rid, "loss", loss * float(c) ** 0.1, step=step)
        client.log_metric(rid, "accuracy", accuracy)
        client.set_terminated(rid, "FINISHED")
        ids.append(rid)
    return ids


def test_compare_and_the_ui_need_the_token(lab: Lab) -> None:
    for token in ("", "wrong"):
        with lab.client(token=token) as client:
            compare = client.get("/mlnb/compare", params=[("run", "a"), ("run", "b")])
            ui = client.post("/mlnb/ui", json={"path": "train.ipynb"})
        assert compare.status_code == 403 and ui.status_code == 403
        assert set(ui.json()) == {"error", "hint", "cell"} and ui.json()["cell"] is None


def test_runs_carry_params_and_the_idle_timeout(lab: Lab, migrated_store: Path) -> None:
    _own_project(lab, "params", migrated_store)  # no MLflow UI started for it yet
    write_notebook(lab.root / "params" / "svm.ipynb", code("C = 1.0", "parameters"))
    ids = _two_runs(lab, "params/svm.ipynb")
    with lab.client() as client:
        first = client.get("/mlnb/runs", params={"path": "params/svm.ipynb"})
        assert first.status_code == 200, first.text
        etag = first.headers["etag"]
        again = client.get(
            "/mlnb/runs", params={"path": "params/svm.ipynb"}, headers={"If-None-Match": etag}
        )
    assert again.status_code == 304  # the sidebar's poll of unchanged runs: no body
    body = first.json()
    assert [r["run_id"] for r in body["runs"]] == ids[::-1]  # newest first
    assert [r["params"] for r in body["runs"]] == [
        {"C": "10", "kernel": "rbf"},
        {"C": "0.1", "kernel": "rbf"},
    ]
    assert body["idle_timeout"] == 1800.0
    assert body["ui_start"] is True and "button starts it" in body["ui_hint"]
    assert all(r["parent_run_id"] is None and r["executed_notebook"] is None for r in body["runs"])


def test_compare_answers_what_mlnb_compare_shows(lab: Lab) -> None:
    write_notebook(lab.root / "svm2.ipynb", code("C = 1.0", "parameters"))
    a, b = _two_runs(lab, "svm2.ipynb")
    with lab.client() as client:
        response = client.get("/mlnb/compare", params=[("run", a), ("run", b)])
        one = client.get("/mlnb/compare", params={"run": a})
        unknown = client.get("/mlnb/compare", params=[("run", a), ("run", "f" * 32)])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_ids"] == [a, b]
    assert body["differing_params"] == ["C"]
    html = body["html"]
    assert "svm-C0.1" in html and "svm-C10" in html
    assert 'class="mlnb-diff"' in html  # the row of C is highlighted
    assert html.count("<svg") >= 2  # a chart for accuracy and one for loss
    assert one.status_code == 400 and "at least two runs" in one.json()["error"]
    assert unknown.status_code in (400, 404), unknown.text
    assert "f" * 32 in unknown.json()["error"]


def test_pipeline_step_runs_link_their_notebook_and_pipeline_run(lab: Lab) -> None:
    folder = lab.root / "linked"
    folder.mkdir()
    write_notebook(
        folder / "fit.ipynb",
        code("C = 1.0", "parameters"),
        code("%load_ext mlnb"),
        code("import mlnb\nmlnb.log_metric('score', C * 2)"),
    )
    (folder / "pipeline.yaml").write_text(
        "name: linked\nsteps:\n  - {name: fit, notebook: fit.ipynb, params: {C: 3.0}}\n"
    )
    with lab.client() as client:
        job = client.post("/mlnb/pipelines", json={"path": "linked/pipeline.yaml"}).json()
        deadline = time.monotonic() + 180
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            job = client.get(f"/mlnb/pipelines/{job['job_id']}").json()
        assert job["status"] == "succeeded", json.dumps(job, indent=1) + lab.log_tail()
        runs = client.get("/mlnb/runs", params={"path": "linked/fit.ipynb"}).json()["runs"]
        step = next(r for r in runs if r["run_id"] == job["steps"][0]["run_id"])
        assert step["step"] == "fit" and step["parent_run_id"] == job["run_id"]
        assert step["parent_url"].endswith(f"/runs/{job['run_id']}")
        assert step["params"]["C"] == "3.0" and step["metrics"]["score"] == 6.0
        executed = step["executed_notebook"]
        assert executed == f"build/pipeline-runs/{job['run_id']}/fit.ipynb"
        # JupyterLab opens it (the kept copy under .mlnb/ is hidden from the contents API)
        opened = client.get(f"/api/contents/{executed}")
    assert opened.status_code == 200, opened.text
    cells = opened.json()["content"]["cells"]
    assert any("papermill" in c["metadata"] or "injected-parameters" in str(c) for c in cells)


def _ui_log(lab: Lab) -> str:
    log = lab.root / ".mlnb" / "mlflow-ui.log"
    return "\n--- mlflow-ui.log:\n" + (log.read_text()[-3000:] if log.exists() else "(none)")


def test_the_mlflow_ui_starts_on_demand_and_is_reused(lab: Lab, migrated_store: Path) -> None:
    """No request waits for MLflow's start-up: the first POST starts it and answers 202, the
    next ones 202 until it answers, then 200; the sidebar's links go to it from then on."""
    _own_project(lab, "ui-on-demand", migrated_store)  # no MLflow UI started for it yet
    notebook = "ui-on-demand/svm3.ipynb"
    write_notebook(lab.root / notebook, code("C = 1.0", "parameters"))
    rid = _two_runs(lab, notebook)[0]
    with lab.client() as client:
        first = client.post("/mlnb/ui", json={"path": notebook})
        assert first.status_code == 202, first.text + lab.log_tail()
        url = first.json()["url"]
        assert first.json() == {"url": url, "started": True, "ready": False}
        starting = client.get("/mlnb/runs", params={"path": notebook}).json()
        assert starting["ui_start"] is True  # no link goes to a UI that does not answer yet
        polls = []
        deadline = time.monotonic() + START_TIMEOUT + 60  # the product's own deadline decides
        while time.monotonic() < deadline:
            answer = client.post("/mlnb/ui", json={"path": notebook})
            polls.append(answer.status_code)
            if answer.status_code != 202:
                break
            if answer.json()["url"] != url:
                # another worker's UI took port 5000 before ours bound it: ours starts again on
                # a free port, once (tests/lab/test_mlflow_ui.py tests that race on its own)
                assert url.endswith(":5000") and answer.json()["started"] is True, answer.text
                url = answer.json()["url"]
                continue
            assert answer.json() == {"url": url, "started": False, "ready": False}
            time.sleep(0.5)
        assert answer.status_code == 200, answer.text + _ui_log(lab)
        assert answer.json() == {"url": url, "started": False, "ready": True}
        again = client.post("/mlnb/ui", json={"path": notebook})
        runs = client.get("/mlnb/runs", params={"path": notebook}).json()
        missing = client.post("/mlnb/ui", json={"path": "nope.ipynb"})
    assert set(polls[:-1]) <= {202}
    assert url.startswith("http://127.0.0.1:")
    assert again.status_code == 200
    assert again.json() == {"url": url, "started": False, "ready": True}
    assert runs["ui_url"] == url and runs["ui_start"] is False
    assert runs["runs"][-1]["url"].startswith(url + "/#/experiments/")
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200
    known = httpx.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": rid}, timeout=30)
    assert known.status_code == 200 and known.json()["run"]["info"]["run_id"] == rid
    assert missing.status_code == 404


def test_a_run_still_in_the_journal_is_listed_at_once_then_as_the_stores(lab: Lab) -> None:
    """A kernel's first run is journaled in microseconds, and reaches the store once MLflow is
    imported (seconds) or the server is back: the sidebar lists it from the journal meanwhile.
    The journal here is mlnb's own, its sender held until the test lets it send with the real
    send_entry, so "not yet in the store" lasts as long as the assertions need."""
    import threading

    from mlnb.config import get_settings
    from mlnb.tracking._client import classify, send_entry
    from mlnb.tracking._journal import Journal, new_local_id

    write_notebook(lab.root / "fresh.ipynb", code("C = 1.0", "parameters"))
    settings = get_settings(lab.root)
    experiment = _store(lab).get_experiment_by_name("Default")
    assert experiment is not None
    gate = threading.Event()

    def send(entry: dict[str, object], ids: dict[str, str]) -> str | None:
        if not gate.wait(timeout=120):
            raise ConnectionError("held by the test")
        return send_entry(entry, ids)

    journal = Journal(settings.journal_dir, send, classify)
    local = new_local_id()
    notebook = str((lab.root / "fresh.ipynb").resolve())
    uri = settings.tracking_uri
    journal.append(
        {
            "op": "create_run",
            "uri": uri,
            "run": local,
            "experiment": "Default",
            "experiment_id": experiment.experiment_id,
            "location": None,
            "run_name": "first-run",
            "tags": {"mlnb.notebook": notebook},
            "start_time": int(time.time() * 1000),
            "parent": None,
        }
    )
    journal.submit(uri, local, "param", ("C", "1.0"))
    journal.submit(uri, local, "metric", ("loss", 0.25, int(time.time() * 1000), 0))
    try:
        journal.flush(timeout=30, wait_sent=False)  # durable in the segment, not sent
        with lab.client() as client:
            body = client.get("/mlnb/runs", params={"path": "fresh.ipynb"}).json()
        (run,) = body["runs"]
        assert run["run_id"] == local and run["pending"] is True and run["url"] == ""
        assert (run["name"], run["status"], body["active"]) == ("first-run", "RUNNING", True)
        assert run["params"] == {"C": "1.0"} and run["metrics"] == {"loss": 0.25}

        gate.set()  # the store is reachable: the run is created under its real id
        assert journal.flush(timeout=120)
        with lab.client() as client:
            body = client.get("/mlnb/runs", params={"path": "fresh.ipynb"}).json()
        (run,) = body["runs"]
        assert run["pending"] is False and not run["run_id"].startswith("local-")
        assert run["params"] == {"C": "1.0"} and run["url"].endswith(run["run_id"])
    finally:
        gate.set()
        journal.close()

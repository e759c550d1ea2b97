"""The REST API of the pipeline panel in a real ``jupyter lab``: a pipeline's DAG, a run's
progress per step (live, full run ids, executed notebooks), the history of its runs, a step's
executed notebook as HTML, and its cron schedules; paths outside the root are refused."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lab.conftest import Lab
from tests.lab.test_handlers import _error
from tests.serving import code, write_notebook

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
WAIT = 240.0  # s: three kernels on a busy 2-core machine


def three_step_pipeline(folder: Path, name: str, sleep: float = 0.0) -> Path:
    """``prepare`` -> ``train`` (sleeps ``sleep`` s in its second cell) -> ``report``, each a
    trivial notebook writing one file; the pipeline file is returned."""
    folder.mkdir(parents=True)
    write_notebook(
        folder / "prepare.ipynb",
        code("rows = 3", "parameters"),
        code("from pathlib import Path\nPath('rows.txt').write_text(str(rows))"),
    )
    write_notebook(
        folder / "train.ipynb",
        code("import time"),
        code(f"time.sleep({sleep})"),
        code(
            "from pathlib import Path\nPath('model.txt').write_text(Path('rows.txt').read_text())"
        ),
    )
    write_notebook(
        folder / "report.ipynb",
        code("from pathlib import Path\nPath('report.txt').write_text('ok')"),
    )
    spec = folder / "pipeline.yaml"
    spec.write_text(
        f"name: {name}\nsteps:\n"
        "  - {name: prepare, notebook: prepare.ipynb, outputs: [rows.txt]}\n"
        "  - {name: train, notebook: train.ipynb, needs: [prepare], inputs: [rows.txt],"
        " outputs: [model.txt]}\n"
        "  - {name: report, notebook: report.ipynb, needs: [train], outputs: [report.txt]}\n",
        encoding="utf-8",
    )
    return spec


def run_to_end(client: httpx.Client, path: str, force: bool = False) -> list[dict[str, Any]]:
    """Start the pipeline and poll its job until it ends: every answer seen, in order."""
    started = client.post("/mlnb/pipelines", json={"path": path, "force": force})
    assert started.status_code == 202, started.text
    seen = [started.json()]
    deadline = time.monotonic() + WAIT
    while seen[-1]["status"] == "running":
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.2)
        seen.append(client.get(f"/mlnb/pipelines/{seen[0]['job_id']}").json())
    return seen


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/mlnb/pipelines/graph?path=x/pipeline.yaml"),
        ("GET", "/mlnb/pipelines/history?path=x/pipeline.yaml"),
        ("GET", "/mlnb/pipelines/notebook?path=x.ipynb"),
        ("GET", "/mlnb/schedules"),
        ("POST", "/mlnb/schedules"),
        ("DELETE", "/mlnb/schedules/abcd1234"),
    ],
)
def test_panel_endpoints_need_the_token(lab: Lab, method: str, url: str) -> None:
    with lab.client(token="") as client:
        _error(client.request(method, url), 403)


def test_graph_history_and_progress_of_a_run(lab: Lab) -> None:
    three_step_pipeline(lab.root / "panel", "panel", sleep=1.5)
    with lab.client() as client:
        graph = client.get("/mlnb/pipelines/graph", params={"path": "panel/pipeline.yaml"})
        assert graph.status_code == 200, graph.text
        body = graph.json()
        assert body["pipeline"] == "panel/pipeline.yaml" and body["name"] == "panel"
        assert [(s["name"], s["needs"], s["notebook"]) for s in body["steps"]] == [
            ("prepare", [], "panel/prepare.ipynb"),
            ("train", ["prepare"], "panel/train.ipynb"),
            ("report", ["train"], "panel/report.ipynb"),
        ]
        assert all(s["last_status"] is None and not s["up_to_date"] for s in body["steps"])
        assert body["job_id"] is None
        # the notebook's folder finds the same pipeline, as Run pipeline does
        by_notebook = client.get("/mlnb/pipelines/graph", params={"path": "panel/train.ipynb"})
        assert by_notebook.json()["pipeline"] == "panel/pipeline.yaml"
        assert client.get("/mlnb/pipelines/history", params={"path": "panel"}).json()["runs"] == []

        seen = run_to_end(client, "panel/pipeline.yaml")
        first = seen[0]["progress"]
        assert [(p["name"], p["state"]) for p in first] == [
            ("prepare", "queued"),
            ("train", "queued"),
            ("report", "queued"),
        ]
        train = [p for job in seen for p in job["progress"] if p["name"] == "train"]
        running = [p for p in train if p["state"] == "running"]
        assert running, "train was never seen running"
        # the running cell, numbered as in the notebook (the markdown heading is cell 1)
        assert any(p["cell"] == "3/4 time.sleep(1.5)" for p in running), running
        assert RUN_ID.match(running[-1]["run_id"])  # the run is known while the step runs
        final = seen[-1]
        assert final["status"] == "succeeded", final
        assert [p["state"] for p in final["progress"]] == ["done", "done", "done"]
        for step in final["progress"]:
            assert RUN_ID.match(step["run_id"]), step
            assert step["notebook"] == f".mlnb/runs/{final['run_id']}/{step['name']}.ipynb"
            assert step["url"].endswith(f"/runs/{step['run_id']}")
        assert train[-1]["run_id"] == running[-1]["run_id"]

        after = client.get("/mlnb/pipelines/graph", params={"path": "panel/pipeline.yaml"}).json()
        assert [s["last_status"] for s in after["steps"]] == ["ok", "ok", "ok"]
        assert all(s["up_to_date"] for s in after["steps"])
        assert [s["last_run_id"] for s in after["steps"]] == [
            p["run_id"] for p in final["progress"]
        ]
        assert after["steps"][0]["last_notebook"] == final["progress"][0]["notebook"]

        # a second run takes every step as it is: the history tells ran from cached
        again = run_to_end(client, "panel/pipeline.yaml")[-1]
        assert [p["state"] for p in again["progress"]] == ["cached", "cached", "cached"]
        assert again["progress"][1]["run_id"] == final["progress"][1]["run_id"]
        history = client.get("/mlnb/pipelines/history", params={"path": "panel/pipeline.yaml"})
        runs = history.json()["runs"]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    newest, oldest = runs
    assert newest["run_id"] is None  # nothing had to run
    assert [s["status"] for s in newest["steps"]] == ["cached"] * 3
    assert oldest["run_id"] == final["run_id"]
    assert [(s["name"], s["status"]) for s in oldest["steps"]] == [
        ("prepare", "ok"),
        ("train", "ok"),
        ("report", "ok"),
    ]
    assert oldest["finished_at"] - oldest["started_at"] >= oldest["steps"][1]["seconds"] > 1.5
    assert newest["started_at"] >= oldest["finished_at"]
    assert oldest["steps"][2]["notebook"] == final["progress"][2]["notebook"]


def test_executed_notebook_as_html_and_nothing_else(lab: Lab) -> None:
    three_step_pipeline(lab.root / "shown", "shown")
    with lab.client() as client:
        final = run_to_end(client, "shown/pipeline.yaml")[-1]
        executed = final["progress"][0]["notebook"]
        page = client.get("/mlnb/pipelines/notebook", params={"path": executed})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'none'" in page.headers["content-security-policy"]
        assert "write_text" in page.text and "rows" in page.text
        source = _error(
            client.get("/mlnb/pipelines/notebook", params={"path": "shown/prepare.ipynb"}), 403
        )
        assert "not an executed notebook of a pipeline run" in source["error"]
        outside = client.get("/mlnb/pipelines/notebook", params={"path": "../x.ipynb"})
        assert "outside the server root" in _error(outside, 403)["error"]
        db = client.get("/mlnb/pipelines/notebook", params={"path": ".mlnb/mlflow.db"})
        assert "not a .ipynb file" in _error(db, 400)["error"]


def test_a_pipeline_naming_a_notebook_outside_the_root_is_refused(lab: Lab) -> None:
    outside = lab.root.parent / "outside-panel"
    outside.mkdir()
    write_notebook(outside / "evil.ipynb", code("x = 1"))
    folder = lab.root / "escaping-panel"
    folder.mkdir()
    (folder / "pipeline.yaml").write_text(
        "name: escaping-panel\nsteps:\n  - {name: evil, notebook: ../../outside-panel/evil.ipynb}\n"
    )
    with lab.client() as client:
        for url in ("/mlnb/pipelines/graph", "/mlnb/pipelines/history", "/mlnb/schedules"):
            body = _error(client.get(url, params={"path": "escaping-panel/pipeline.yaml"}), 403)
            assert "steps[evil].notebook" in body["error"], url
            assert "outside the server root" in body["error"]
        added = client.post(
            "/mlnb/schedules", json={"path": "escaping-panel/pipeline.yaml", "cron": "@daily"}
        )
        _error(added, 403)
        assert (
            "outside the server root"
            in _error(
                client.get("/mlnb/pipelines/graph", params={"path": "../outside-panel"}), 403
            )["error"]
        )


def test_schedules_add_list_remove(lab: Lab) -> None:
    three_step_pipeline(lab.root / "nightly", "nightly")
    path = "nightly/pipeline.yaml"
    with lab.client() as client:
        assert client.get("/mlnb/schedules", params={"path": path}).json()["schedules"] == []
        bad = _error(client.post("/mlnb/schedules", json={"path": path, "cron": "0 3 * *"}), 400)
        assert bad["error"].startswith("bad cron expression '0 3 * *': it has 4 fields, not 5")
        assert "use e.g." in bad["error"] and "UTC" in bad["error"]
        wrong = _error(
            client.post("/mlnb/schedules", json={"path": path, "cron": "0 25 * * *"}), 400
        )
        assert "bad cron expression '0 25 * * *'" in wrong["error"]
        missing = _error(client.post("/mlnb/schedules", json={"path": path}), 400)
        assert "cron" in missing["error"]

        added = client.post("/mlnb/schedules", json={"path": path, "cron": "0  3 * * *"})
        assert added.status_code == 201, added.text
        (schedule,) = added.json()["schedules"]
        assert schedule["cron"] == "0 3 * * *" and schedule["pipeline"] == path
        assert re.match(r"^\d{4}-\d\d-\d\dT03:00\+00:00$", schedule["next_run"]), schedule
        assert schedule["enabled"] and schedule["last_fired"] is None
        assert "mlnb schedule run" in added.json()["scheduler_hint"]
        listed = client.get("/mlnb/schedules", params={"path": path}).json()["schedules"]
        assert [s["id"] for s in listed] == [schedule["id"]]
        # the CLI's store: `mlnb schedule list` sees it
        from mlnb.pipeline import list_schedules

        stored = list_schedules(lab.root / ".mlnb")
        assert any(s.id == schedule["id"] and s.pipeline.endswith(path) for s in stored)

        removed = client.delete(f"/mlnb/schedules/{schedule['id']}", params={"path": path})
        assert removed.status_code == 200, removed.text
        assert removed.json()["schedules"] == []
        gone = _error(client.delete(f"/mlnb/schedules/{schedule['id']}"), 400)
        assert f"no schedule with id {schedule['id']!r}" in gone["error"]
